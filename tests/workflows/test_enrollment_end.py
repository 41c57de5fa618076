"""An enrollment's end closes what it left open: questionnaires (their links stop taking answers) and
call tasks (they leave the worklist), at the moment of the end, on the time-skipping server."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from activities.delivery import DeliveryActivities
from language.validation import parse_pathway
from services.responses import QuestionnaireClosed, submit_response
from services.settings import PROJECT_ROOT
from services.site import load_site
from store.db import CallTaskRecord, Enrollment, QuestionnaireRecord, ResponseRecord
from workflows.contracts import CancelRequest, EnrollmentStatusChange
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")

# A call and two questionnaires open at once; PHQ-9's item 9 stops the pathway with both still open.
PATHWAY = """\
id: ending-test
version: 1
title: Ending test
anchor: delivery_date
locales: [en]
steps:
  - kind: call
    id: follow-up-call
    at: day 1 09:00
    team: follow-up-nurses
    script: {en: "Ask how things are."}
  - kind: questionnaire
    id: phq9
    instrument: phq-9
    at: day 1 10:00
    expire: 72h
    template: {en: {subject: "Mood", body: "{{ link }}"}}
    on:
      - when: "'self_harm' in flags"
        escalate: {reason: "PHQ-9 item 9", policy: crisis}
        stop: true
  - kind: questionnaire
    id: gad7
    instrument: gad-7
    at: day 1 10:00
    expire: 72h
    template: {en: {subject: "Worry", body: "{{ link }}"}}
"""
FREQUENCY = ["not_at_all", "several_days", "more_than_half_the_days", "nearly_every_day"]
SELF_HARM = {f"q{n}": FREQUENCY[v] for n, v in enumerate([0, 0, 0, 0, 0, 0, 0, 0, 1], start=1)}
GAD7_NONE = {f"q{n}": "not_at_all" for n in range(1, 8)}


async def _enrolled_with_everything_open(time_skipping, stack):
    pathway = parse_pathway(PATHWAY, "ending.yaml", stack.instruments, SITE.teams())
    patient = await stack.add_patient(timezone="UTC")
    anchor = (await time_skipping.get_current_time()).date() + timedelta(days=1)
    enrolled = await stack.enroll(patient, pathway, anchor)
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    opens = next(e.due for e in timeline.entries if e.step_id == "gad7")
    await time_skipping.sleep(opens + timedelta(minutes=30) - await time_skipping.get_current_time())
    return enrolled


async def _rows(stack, enrollment_id: str):
    async with stack.sessions() as session:
        enrollment = await session.get(Enrollment, enrollment_id)
        questionnaires = (await session.scalars(select(QuestionnaireRecord).where(
            QuestionnaireRecord.enrollment_id == enrollment_id).order_by(QuestionnaireRecord.step_id))).all()
        tasks = (await session.scalars(select(CallTaskRecord).where(
            CallTaskRecord.enrollment_id == enrollment_id))).all()
    return enrollment, questionnaires, tasks


async def _until_ended(stack, enrollment_id: str):
    """The rows once the end is recorded, waiting in real time only: the clock is not skipped, so
    an end recorded only when some later timer fires would never arrive here."""
    for _ in range(100):
        rows = await _rows(stack, enrollment_id)
        if rows[0].status != "active":
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"enrollment {enrollment_id} still active 5 s after it ended")


async def _answer(stack, enrollment_id: str, step_id: str, answers: dict):
    return await submit_response(stack.sessions, stack.client, stack.instruments, enrollment_id=enrollment_id,
                                 step_id=step_id, occurrence=1, answers=answers, source="patient")


async def test_cancel_closes_open_questionnaires_and_call_tasks_at_once(time_skipping, stack):
    enrolled = await _enrolled_with_everything_open(time_skipping, stack)
    enrollment_id = enrolled.enrollment.id
    _, questionnaires, tasks = await _rows(stack, enrollment_id)
    assert [q.status for q in questionnaires] == ["open", "open"] and [t.status for t in tasks] == ["open"]
    cancelled_at = await time_skipping.get_current_time()

    await enrolled.workflow.execute_update(PathwayWorkflow.cancel, CancelRequest(reason="readmitted"))
    enrollment, questionnaires, tasks = await _until_ended(stack, enrollment_id)

    assert await time_skipping.get_current_time() - cancelled_at < timedelta(minutes=1)
    assert (enrollment.status, enrollment.status_reason) == ("cancelled", "readmitted")
    assert [(q.status, q.closed_reason) for q in questionnaires] == [("closed", "readmitted")] * 2
    assert [(t.status, t.closed_reason) for t in tasks] == [("cancelled", "readmitted")]
    with pytest.raises(QuestionnaireClosed) as closed:
        await _answer(stack, enrollment_id, "gad7", GAD7_NONE)
    assert closed.value.why == "ended"


async def test_an_answer_racing_the_end_is_refused_as_closed_and_kept(time_skipping, stack):
    enrolled = await _enrolled_with_everything_open(time_skipping, stack)
    await enrolled.workflow.execute_update(PathwayWorkflow.cancel, CancelRequest(reason="readmitted"))
    await enrolled.workflow.result()
    # As if the answer had read the questionnaire just before the end was recorded.
    async with stack.sessions.begin() as session:
        await session.execute(update(QuestionnaireRecord).values(status="open"))

    with pytest.raises(QuestionnaireClosed) as closed:
        await _answer(stack, enrolled.enrollment.id, "gad7", GAD7_NONE)

    assert closed.value.why == "ended"
    async with stack.sessions() as session:
        assert (await session.scalars(select(ResponseRecord.status))).all() == ["refused"]


async def test_a_rule_that_stops_the_pathway_closes_the_rest(time_skipping, stack):
    enrolled = await _enrolled_with_everything_open(time_skipping, stack)

    accepted = await _answer(stack, enrolled.enrollment.id, "phq9", SELF_HARM)
    enrollment, questionnaires, tasks = await _until_ended(stack, enrolled.enrollment.id)

    assert accepted.outcome.stopped and enrollment.status == "stopped"
    assert [(q.step_id, q.status) for q in questionnaires] == [("gad7", "closed"), ("phq9", "answered")]
    assert questionnaires[0].closed_reason == enrollment.status_reason
    assert [t.status for t in tasks] == ["cancelled"]


async def test_completion_cancels_a_call_task_still_open_and_a_retry_changes_nothing(time_skipping, stack):
    patient = await stack.add_patient(timezone="UTC")
    async with stack.sessions.begin() as session:
        enrollment = Enrollment(patient_id=patient.id, pathway_id="ending-test", pathway_version=1,
                                anchor=await time_skipping.get_current_time(), timezone="UTC",
                                request_fingerprint="test")
        session.add(enrollment)
        await session.flush()
        session.add_all([
            CallTaskRecord(enrollment_id=enrollment.id, step_id="call", occurrence=1, attempt=1, team="midwives",
                           status="done", outcome="reached", due_at=enrollment.anchor),
            CallTaskRecord(enrollment_id=enrollment.id, step_id="call", occurrence=1, attempt=2, team="midwives",
                           status="open", due_at=enrollment.anchor),
        ])
    activities = DeliveryActivities(stack.sessions, channels={}, links=None)
    completed = EnrollmentStatusChange(enrollment_id=enrollment.id, status="completed", reason=None)

    await activities.record_enrollment_status(completed)
    await activities.record_enrollment_status(completed)

    ended, _, tasks = await _rows(stack, enrollment.id)
    assert ended.status == "completed" and ended.ended_at is not None
    assert sorted((t.attempt, t.status, t.closed_reason) for t in tasks) == [
        (1, "done", None), (2, "cancelled", "the enrollment completed")]
