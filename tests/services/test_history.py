"""An enrollment's course over time: scores and numbers from responses and from call outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.history import Point, measurements, responses_of
from store.db import (
    CallTaskRecord,
    Enrollment,
    Patient,
    QuestionnaireRecord,
    ResponseRecord,
)


async def test_scores_numeric_answers_and_call_values_are_points_in_time_and_nothing_else(database):
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    async with database() as session:
        session.add(Patient(id="pt_1", given_name="Wei", family_name="Li", locale="zh-CN", timezone="Asia/Shanghai"))
        await session.flush()
        session.add(Enrollment(id="en_1", patient_id="pt_1", pathway_id="p", pathway_version=1, anchor=start,
                               timezone="Asia/Shanghai", request_fingerprint="x"))
        await session.flush()
        for day, (score, answers) in enumerate([(15, {"q1": "several_days"}),
                                                (None, {"temperature": "38.4", "wound_ok": True, "note": "tired"})]):
            questionnaire = QuestionnaireRecord(enrollment_id="en_1", step_id=["phq9", "check"][day], occurrence=1,
                                                instrument_id="i", opens_at=start, expires_at=start + timedelta(days=30))
            session.add(questionnaire)
            await session.flush()
            session.add(ResponseRecord(questionnaire_id=questionnaire.id, instrument_id="i", answers=answers,
                                       score=score, band="moderate" if score else None, source="patient",
                                       submitted_at=start + timedelta(days=day)))
        session.add(CallTaskRecord(enrollment_id="en_1", step_id="bp-call", occurrence=1, attempt=1, team="midwives",
                                   due_at=start, status="done", values={"systolic": 150, "feeding_ok": False},
                                   recorded_at=start + timedelta(days=3)))
        await session.commit()

        points = await measurements(session, "en_1")
        answered = await responses_of(session, "en_1")

    assert points == [Point("bp-call", "systolic", start + timedelta(days=3), 150.0),
                      Point("check", "temperature", start + timedelta(days=1), 38.4),
                      Point("phq9", "score", start, 15.0)]
    assert [(line.step_id, line.score, line.band) for line in answered] == [("phq9", 15, "moderate"),
                                                                          ("check", None, None)]
