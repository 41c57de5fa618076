"""An enrollment's stage summary (随访小结): what was sent, answered, flagged and done, for the chart.

This is patient data (names, answers' scores, staff's notes): callers check the reader may see the
enrollment (services/scope.py) and audit the read before showing it. Free-text answers are not
included: the summary is printed and filed, and a patient's words belong in the record they were
given to, read there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.db import (
    CallTaskRecord,
    Enrollment,
    EscalationRecord,
    Patient,
    QuestionnaireRecord,
    ResponseRecord,
    StaffMember,
    TouchpointRecord,
)


class UnknownEnrollment(LookupError):
    pass


@dataclass(frozen=True)
class Sent:
    step_id: str
    occurrence: int
    purpose: str
    channel: str
    status: str
    due_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class Answered:
    step_id: str
    occurrence: int
    instrument_id: str
    status: str  # answered, expired, closed or open
    opens_at: datetime
    answered_at: datetime | None
    score: float | None
    band: str | None
    flags: tuple[str, ...]
    source: str | None  # form or phone


@dataclass(frozen=True)
class Flagged:
    reason: str
    priority: str
    status: str
    team: str | None
    opened_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    outcome_note: str | None


@dataclass(frozen=True)
class Done:
    """A call task: what the team did, and what came of it."""

    step_id: str
    attempt: int
    team: str
    status: str
    due_at: datetime
    outcome: str | None
    notes: str | None
    recorded_by: str | None
    recorded_at: datetime | None


@dataclass(frozen=True)
class StageSummary:
    enrollment_id: str
    given_name: str
    family_name: str
    hospital_number: str | None
    pathway_id: str
    pathway_version: int
    status: str
    status_reason: str | None
    anchor: datetime
    timezone: str
    started_at: datetime
    ended_at: datetime | None
    sent: list[Sent]
    answered: list[Answered]
    flagged: list[Flagged]
    done: list[Done]


async def stage_summary(session: AsyncSession, enrollment_id: str) -> StageSummary:
    """Everything recorded for one enrollment, oldest first; raise UnknownEnrollment."""
    enrollment = await session.get(Enrollment, enrollment_id)
    if enrollment is None:
        raise UnknownEnrollment(f"enrollment '{enrollment_id}' not found")
    patient = await session.get(Patient, enrollment.patient_id)
    sent = [Sent(t.step_id, t.occurrence, t.purpose, t.channel, t.status, t.due_at, t.sent_at)
            for t in await session.scalars(select(TouchpointRecord).where(TouchpointRecord.enrollment_id == enrollment_id)
                                           .order_by(TouchpointRecord.due_at, TouchpointRecord.id))]
    # The accepted response of each occurrence; a refused one (too late, answered twice) changed nothing.
    questionnaires = await session.execute(
        select(QuestionnaireRecord, ResponseRecord)
        .outerjoin(ResponseRecord, (ResponseRecord.questionnaire_id == QuestionnaireRecord.id)
                   & (ResponseRecord.status == "accepted"))
        .where(QuestionnaireRecord.enrollment_id == enrollment_id)
        .order_by(QuestionnaireRecord.opens_at, QuestionnaireRecord.id))
    answered = [Answered(q.step_id, q.occurrence, q.instrument_id, q.status, q.opens_at, q.answered_at,
                         r.score if r else None, r.band if r else None, tuple(r.flags) if r else (),
                         r.source if r else None)
                for q, r in questionnaires]
    escalations = list(await session.scalars(select(EscalationRecord).where(
        EscalationRecord.enrollment_id == enrollment_id).order_by(EscalationRecord.opened_at)))
    tasks = list(await session.scalars(select(CallTaskRecord).where(CallTaskRecord.enrollment_id == enrollment_id)
                                       .order_by(CallTaskRecord.due_at, CallTaskRecord.attempt)))
    staff_ids = ({e.acknowledged_by for e in escalations} | {e.resolved_by for e in escalations}
                 | {t.recorded_by for t in tasks}) - {None}
    names = dict((await session.execute(select(StaffMember.id, StaffMember.name)
                                        .where(StaffMember.id.in_(staff_ids)))).all()) if staff_ids else {}

    def name(staff_id: str | None) -> str | None:
        return names.get(staff_id, staff_id) if staff_id else None

    flagged = [Flagged(e.reason, e.priority, e.status, e.team, e.opened_at, name(e.acknowledged_by), e.acknowledged_at,
                       name(e.resolved_by), e.resolved_at, e.outcome_note) for e in escalations]
    done = [Done(t.step_id, t.attempt, t.team, t.status, t.due_at, t.outcome, t.notes, name(t.recorded_by),
                 t.recorded_at) for t in tasks]
    return StageSummary(enrollment.id, patient.given_name, patient.family_name, patient.hospital_number,
                        enrollment.pathway_id, enrollment.pathway_version, enrollment.status, enrollment.status_reason,
                        enrollment.anchor, enrollment.timezone, enrollment.created_at, enrollment.ended_at,
                        sent, answered, flagged, done)
