"""What the patient's preferences ask of one delivery: the channels to try in order, and whether their
quiet hours or their daily budget hold the message (and until when).

The budget counts the patient's messages due on their local day across all their enrollments: sent,
or being sent right now by another delivery. Two deliveries to one patient at once count one after the
other: the delivery claims its touchpoint (a write, which SQLite serialises) after locking the patient's
row (PostgreSQL), and counts within the same transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from language.reach import channel_order, local_day, parse_quiet_hours, quiet_until
from store.db import Enrollment, Patient, PatientPreferences, TouchpointRecord, utcnow
from workflows.contracts import MessageDelivery


@dataclass(frozen=True)
class Hold:
    until: datetime
    why: str


# The delivery's statements are built once, with their parameters bound at each call: building a statement
# costs the worker more CPU than SQLAlchemy's (cached) compiling of it.
_PATIENT_OF_ENROLLMENT = (
    select(Patient, PatientPreferences).join(Enrollment, Enrollment.patient_id == Patient.id)
    .outerjoin(PatientPreferences, PatientPreferences.patient_id == Patient.id)
    .where(Enrollment.id == bindparam("enrollment_id")))
_PATIENT_OF_ENROLLMENT_LOCKED = _PATIENT_OF_ENROLLMENT.with_for_update(of=Patient)


async def patient_for_delivery(session: AsyncSession, enrollment_id: str,
                               lock: bool) -> tuple[Patient, PatientPreferences | None] | None:
    """The enrollment's patient and their stored preferences, read together (one round trip on the hot
    path); `lock`: the patient's row held until the transaction ends (PostgreSQL), so that deliveries to
    one patient count the day's messages in turn."""
    query = _PATIENT_OF_ENROLLMENT_LOCKED if lock else _PATIENT_OF_ENROLLMENT
    row = (await session.execute(query, {"enrollment_id": enrollment_id})).first()
    return None if row is None else (row[0], row[1])


def channels_to_try(request: MessageDelivery, patient: Patient, preferences: PatientPreferences | None,
                    configured: Collection[str]) -> list[str]:
    """In order: the patient's preferred channels, then the pathway's; only those this site has configured.
    Consent (a channel the patient opted out of) narrows this list, nothing else decides the order."""
    order = channel_order(preferences.channels if preferences else [], request.channel, request.reach, patient.locale)
    return [channel for channel in order if channel in configured]


async def hold_for(session: AsyncSession, request: MessageDelivery, patient: Patient,
                   preferences: PatientPreferences | None, site_budget: int, sending: int) -> Hold | None:
    """Until when the patient's wishes hold this message, if they do, judged at the time it is due (the
    workflow's clock: a held message comes back due when it was let go). `sending`: its own row, not counted."""
    if "quiet_hours" in request.waits_for and preferences is not None and preferences.quiet_hours:
        ends = quiet_until(request.due, parse_quiet_hours(preferences.quiet_hours), patient.timezone)
        if ends is not None:
            return Hold(ends, f"the patient's quiet hours {preferences.quiet_hours}")
    if "daily_budget" in request.waits_for:
        budget = preferences.daily_budget if preferences is not None and preferences.daily_budget else site_budget
        starts, tomorrow = local_day(request.due, patient.timezone)
        if await messages_due_between(session, patient.id, starts, tomorrow, sending) >= budget:
            return Hold(tomorrow, f"the patient's daily budget of {budget} messages is spent")
    return None


_MESSAGES_DUE = (
    select(func.count()).select_from(TouchpointRecord)
    .where(TouchpointRecord.patient_id == bindparam("patient_id"), TouchpointRecord.id != bindparam("excluding"),
           or_(TouchpointRecord.status == "sent",
               and_(TouchpointRecord.status == "sending", TouchpointRecord.claimed_until > bindparam("now"))),
           TouchpointRecord.due_at >= bindparam("starts"), TouchpointRecord.due_at < bindparam("ends")))


async def messages_due_between(session: AsyncSession, patient_id: str, starts: datetime, ends: datetime,
                               excluding: int) -> int:
    """The patient's messages due in [starts, ends) (a held one counts on the day it was let go) that were
    sent, or that another delivery holds a live claim on."""
    return await session.scalar(_MESSAGES_DUE, {"patient_id": patient_id, "excluding": excluding, "now": utcnow(),
                                                "starts": starts, "ends": ends})
