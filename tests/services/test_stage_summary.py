"""The stage summary lists what the store holds for one enrollment, and nothing of any other."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.stage_summary import UnknownEnrollment, stage_summary
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


async def seed(sessions, enrollment_id: str, anchor: datetime) -> None:
    async with sessions.begin() as session:
        session.add(Patient(id=f"pt_{enrollment_id}", given_name="Wei", family_name="Li", hospital_number=enrollment_id,
                            locale="zh-CN", timezone="Asia/Shanghai"))
        session.add(StaffMember(id=f"st_{enrollment_id}", name="Nurse Wang", email=f"{enrollment_id}@staff.test"))
        await session.flush()
        session.add(Enrollment(id=enrollment_id, patient_id=f"pt_{enrollment_id}", pathway_id="mood", pathway_version=2,
                               anchor=anchor, timezone="Asia/Shanghai", status="completed", request_fingerprint="t",
                               created_at=anchor, ended_at=anchor + timedelta(days=30)))
        await session.flush()
        session.add_all([
            TouchpointRecord(enrollment_id=enrollment_id, step_id="welcome", occurrence=1, channel="email",
                             status="sent", due_at=anchor + timedelta(hours=2), sent_at=anchor + timedelta(hours=2)),
            TouchpointRecord(enrollment_id=enrollment_id, step_id="phq9", occurrence=1, purpose="invitation",
                             channel="email", status="failed", due_at=anchor + timedelta(days=7)),
        ])
        answered = QuestionnaireRecord(enrollment_id=enrollment_id, step_id="phq9", occurrence=1, instrument_id="phq-9",
                                       status="answered", opens_at=anchor + timedelta(days=7),
                                       expires_at=anchor + timedelta(days=10), answered_at=anchor + timedelta(days=8))
        expired = QuestionnaireRecord(enrollment_id=enrollment_id, step_id="phq9", occurrence=2, instrument_id="phq-9",
                                      status="expired", opens_at=anchor + timedelta(days=14),
                                      expires_at=anchor + timedelta(days=17))
        session.add_all([answered, expired])
        await session.flush()
        session.add_all([
            ResponseRecord(questionnaire_id=answered.id, instrument_id="phq-9", answers={}, score=16, band="moderately severe",
                           flags=["self_harm"], status="accepted", source="form", submitted_at=anchor + timedelta(days=8)),
            ResponseRecord(questionnaire_id=answered.id, instrument_id="phq-9", answers={}, score=3, band="minimal",
                           status="refused", source="form", submitted_at=anchor + timedelta(days=9)),
            EscalationRecord(id=f"{enrollment_id}-1", enrollment_id=enrollment_id, step_id="phq9", occurrence=1,
                             trigger="score >= 15", reason="PHQ-9 of 15 or more", priority="urgent", team="midwives",
                             status="resolved", opened_at=anchor + timedelta(days=8),
                             acknowledged_by=f"st_{enrollment_id}", acknowledged_at=anchor + timedelta(days=8, minutes=9),
                             resolved_by=f"st_{enrollment_id}", resolved_at=anchor + timedelta(days=8, hours=2),
                             outcome_note="Phoned; GP tomorrow"),
            CallTaskRecord(enrollment_id=enrollment_id, step_id="day-42-call", occurrence=1, attempt=1, team="midwives",
                           status="done", due_at=anchor + timedelta(days=29), outcome="reached", notes="Well",
                           recorded_by=f"st_{enrollment_id}", recorded_at=anchor + timedelta(days=29, hours=1)),
        ])


async def test_what_was_sent_answered_flagged_and_done_in_order(database):
    anchor = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
    await seed(database, "en_mine", anchor)
    await seed(database, "en_other", anchor - timedelta(days=3))

    async with database() as session:
        summary = await stage_summary(session, "en_mine")

    assert (summary.given_name, summary.family_name, summary.hospital_number, summary.status) == \
        ("Wei", "Li", "en_mine", "completed")
    assert [(s.step_id, s.purpose, s.status, s.sent_at) for s in summary.sent] == [
        ("welcome", "scheduled", "sent", anchor + timedelta(hours=2)), ("phq9", "invitation", "failed", None)]
    assert [(a.occurrence, a.status, a.score, a.band, a.flags) for a in summary.answered] == [
        (1, "answered", 16, "moderately severe", ("self_harm",)), (2, "expired", None, None, ())], \
        "the accepted answer only; the refused second try changed nothing"
    assert [(f.reason, f.acknowledged_by, f.resolved_by, f.outcome_note) for f in summary.flagged] == [
        ("PHQ-9 of 15 or more", "Nurse Wang", "Nurse Wang", "Phoned; GP tomorrow")]
    assert [(d.step_id, d.outcome, d.notes, d.recorded_by) for d in summary.done] == [
        ("day-42-call", "reached", "Well", "Nurse Wang")]


async def test_an_unknown_enrollment_is_said_so(database):
    async with database() as session:
        with pytest.raises(UnknownEnrollment, match="enrollment 'en_nobody' not found"):
            await stage_summary(session, "en_nobody")
