"""A patient's consent to be contacted, per channel: granted or withdrawn, by staff, a hospital system,
or the patient themself (the unsubscribe link in an email, a STOP reply to an SMS).

Every decision is a new row (store.db.ConsentRecord, append-only): the newest per channel holds, and
delivery asks store.consent.channel_allowed before each message. Withdrawing consent on every channel
at once (`all`) is the patient leaving follow-up: each of their running enrollments is cancelled too.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal, get_args

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from language.model import Channel
from store.consent import WITHDRAWN
from store.db import AccessAudit, ConsentRecord, Patient, utcnow

log = logging.getLogger(__name__)

CHANNELS: tuple[str, ...] = get_args(Channel)
EVERY_CHANNEL = "all"
Decision = Literal["granted", "withdrawn"]
# How staff and hospital systems say they learnt it; patients' own ways are `link` and `sms-reply`.
StaffMethod = Literal["verbal", "written", "web", "import"]
WITHDREW = "patient withdrew consent"
# What a patient replies to stop SMS (Alibaba Cloud's own unsubscribe words among them), whatever the case.
STOP_WORDS = frozenset({"stop", "退订", "td", "t"})


@dataclass(frozen=True)
class Recorder:
    """Who recorded a decision: a principal's kind and id, or the patient (`patient`, no id)."""

    kind: str
    id: str | None


PATIENT = Recorder("patient", None)


def record_decision(session: AsyncSession, patient_id: str, channel: str, decision: Decision, method: str,
                    recorder: Recorder) -> list[ConsentRecord]:
    """Add the decision for `channel`, or for every channel with `all`; committed by the caller, with
    its audit row."""
    channels = CHANNELS if channel == EVERY_CHANNEL else (channel,)
    rows = [ConsentRecord(patient_id=patient_id, channel=name, decision=decision, method=method,
                          actor_kind=recorder.kind, actor_id=recorder.id, at=utcnow()) for name in channels]
    session.add_all(rows)
    return rows


async def consent_history(session: AsyncSession, patient_id: str) -> list[ConsentRecord]:
    """Every decision recorded for the patient, newest first."""
    return list(await session.scalars(select(ConsentRecord).where(ConsentRecord.patient_id == patient_id)
                                      .order_by(ConsentRecord.id.desc())))


def is_stop_word(text: str) -> bool:
    return re.sub(r"[\s\W_]+", "", text).casefold() in STOP_WORDS


def _digits(text: str) -> str:
    return "".join(character for character in text if character.isdigit())


def same_phone(stored: str, sender: str) -> bool:
    """Whether two numbers are one, written with or without the country code (`+86 138 0013 8000`,
    `13800138000`, `020 7946 0000` for `+44 20 7946 0000`): a gateway reports the sender the way its
    network gives it. Leading zeros (a trunk or international prefix) say nothing about the number."""
    longer, shorter = sorted((_digits(stored).lstrip("0"), _digits(sender).lstrip("0")), key=len, reverse=True)
    return len(shorter) >= 7 and longer.endswith(shorter) and len(longer) - len(shorter) <= 3


async def patients_with_phone(session: AsyncSession, sender: str) -> list[str]:
    """The patients whose phone is `sender` (a mother and her baby may share one)."""
    digits = _digits(sender).lstrip("0")
    if len(digits) < 7:
        return []
    # Phones are kept as typed: compare their digits, the last seven in SQL, the rest here.
    stored_digits = Patient.phone
    for separator in (" ", "-", "(", ")", "+"):
        stored_digits = func.replace(stored_digits, separator, "")
    rows = await session.execute(select(Patient.id, Patient.phone).where(stored_digits.like(f"%{digits[-7:]}")))
    return [patient_id for patient_id, phone in rows if same_phone(phone, sender)]


async def stop_sms_for(session: AsyncSession, sender: str, gateway: str, client_ip: str | None) -> int:
    """A STOP reply: SMS consent withdrawn for each patient with that phone, audited as the patient; committed.
    Returns how many patients it stopped."""
    patients = await patients_with_phone(session, sender)
    for patient_id in patients:
        record_decision(session, patient_id, "sms", WITHDRAWN, "sms-reply", PATIENT)
        session.add(patient_audit("consent.withdraw", patient_id, "sms", client_ip, f"replied STOP ({gateway})"))
    await session.commit()
    return len(patients)


def patient_audit(action: str, patient_id: str, channel: str, client_ip: str | None, how: str) -> AccessAudit:
    return AccessAudit(at=utcnow(), actor_kind=PATIENT.kind, actor_id=None, actor_roles="", action=action,
                       outcome="allowed", patient_id=patient_id, target=channel, client_ip=client_ip, reason=how)

