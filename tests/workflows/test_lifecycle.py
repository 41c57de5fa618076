"""Pause, resume, anchor moves and stopping for good, on the time-skipping server with the real worker,
database and SMTP server (workflows/lifecycle.py)."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select
from temporalio.client import WorkflowUpdateFailedError

from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site
from store.db import Patient, TouchpointRecord
from tests.workflows.faults import smtp_down
from tools.simulation import OPERATIONS_EMAIL
from workflows.contracts import (
    AnchorMove,
    CancelRequest,
    PauseRequest,
    ResumeRequest,
    StopForGood,
    workflow_id_for,
)
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")


def _pathway(steps: str, pathway_id: str = "lifecycle-test"):
    # Each pathway its own id: a worker reads a version's texts by (id, version), which never changes.
    return parse_pathway(f"id: {pathway_id}\nversion: 1\ntitle: Lifecycle\nanchor: surgery_date\nlocales: [en]\n"
                         "steps:\n" + steps, "lifecycle.yaml", SITE.instruments, SITE.teams())


def _daily_messages(times: int, while_paused: str | None = None):
    policy = f"    while_paused: {while_paused}\n" if while_paused else ""
    return _pathway(f"  - kind: message\n    id: daily\n    at: day 1 10:00\n    repeat: {{every: 1d, times: {times}}}\n"
                    f"    template: {{en: {{subject: 'Day {{{{ step.occurrence }}}}', body: 'Hello'}}}}\n" + policy)


DAILY_CHECK = _pathway(
    "  - kind: questionnaire\n    id: check\n    instrument: gad-7\n    at: day 1 10:00\n"
    "    repeat: {every: 1d, times: 5}\n    expire: 12h\n    template: {en: {subject: 'Check {{ step.occurrence }}', "
    "body: '{{ link }}'}}\n", "lifecycle-check")


def _at(anchor: date, day: int, hour: int) -> datetime:
    return datetime.combine(anchor + timedelta(days=day), time(hour), tzinfo=UTC)


async def _until(time_skipping, moment: datetime) -> None:
    await time_skipping.sleep(moment - await time_skipping.get_current_time())


def _subjects(stack) -> list[str]:
    return [mail.subject for mail in stack.inbox.messages if mail.recipients == ("patient@example.test",)]


async def _enrolled(time_skipping, stack, pathway, patient=None):
    anchor = (await time_skipping.get_current_time()).date() + timedelta(days=1)
    enrolled = await stack.enroll(patient or await stack.add_patient(timezone="UTC"), pathway, anchor)
    return anchor, enrolled


async def test_messages_due_while_paused_are_skipped_and_the_rest_follow_the_resume(time_skipping, stack):
    anchor, enrolled = await _enrolled(time_skipping, stack, _daily_messages(8))
    await _until(time_skipping, _at(anchor, 2, 12))  # days 1 and 2 sent

    paused = await enrolled.workflow.execute_update(PathwayWorkflow.pause,
                                                    PauseRequest(reason="readmitted", actor="st-nurse"))
    await _until(time_skipping, _at(anchor, 5, 12))  # days 3, 4 and 5 fall due while paused
    sent_while_paused = _subjects(stack)
    resumed = await enrolled.workflow.execute_update(PathwayWorkflow.resume, ResumeRequest(actor="st-nurse"))
    timeline = await enrolled.workflow.result()

    assert paused.paused is not None and paused.paused.reason == "readmitted" and paused.status == "active"
    assert sent_while_paused == ["Day 1", "Day 2"] and resumed.paused is None
    assert [e.status for e in timeline.entries] == ["sent"] * 2 + ["skipped"] * 3 + ["sent"] * 3
    assert {e.detail for e in timeline.entries if e.status == "skipped"} == {"due while the enrollment was paused"}
    assert _subjects(stack) == ["Day 1", "Day 2", "Day 6", "Day 7", "Day 8"]
    assert [(e.kind, e.detail) for e in timeline.events] == [("pause", "paused by st-nurse: readmitted"),
                                                             ("resume", "resumed by st-nurse")]


async def test_questionnaires_held_while_paused_open_on_resume_the_latest_only(time_skipping, stack):
    anchor, enrolled = await _enrolled(time_skipping, stack, DAILY_CHECK)
    await _until(time_skipping, _at(anchor, 1, 12))  # the first check is open, and expires at 22:00

    await enrolled.workflow.execute_update(PathwayWorkflow.pause, PauseRequest(reason="readmitted", actor="st-1"))
    await _until(time_skipping, _at(anchor, 3, 15))  # checks 2 and 3 fall due while paused
    resumed_at = await time_skipping.get_current_time()
    await enrolled.workflow.execute_update(PathwayWorkflow.resume, ResumeRequest(actor="st-1"))
    timeline = await enrolled.workflow.result()

    checks = {e.occurrence: e for e in timeline.entries}
    assert checks[1].status == "expired"  # expiry went on during the pause
    assert checks[2].status == "skipped" and checks[2].detail == "held during the pause; a later occurrence went instead"
    assert checks[3].status == "expired" and abs(checks[3].closes - timedelta(hours=12) - resumed_at) < timedelta(seconds=5)
    assert [checks[n].status for n in (4, 5)] == ["expired", "expired"]
    assert _subjects(stack) == ["Check 1", "Check 3", "Check 4", "Check 5"]


async def test_an_anchor_moved_later_recomputes_what_is_to_come_and_sends_nothing_twice(time_skipping, stack):
    anchor, enrolled = await _enrolled(time_skipping, stack, _daily_messages(6))
    await _until(time_skipping, _at(anchor, 2, 12))  # days 1 and 2 sent
    new_anchor = _at(anchor, 3, 0)

    moved = await enrolled.workflow.execute_update(PathwayWorkflow.move_anchor, AnchorMove(
        anchor=new_anchor, reason="operation rescheduled", actor="st-surgeon"))
    timeline = await enrolled.workflow.result()

    assert [e.due for e in moved.entries[2:]] == [_at(new_anchor.date(), day, 10) for day in (3, 4, 5, 6)]
    assert [e.status for e in timeline.entries] == ["sent"] * 6
    assert [e.due for e in timeline.entries[:2]] == [_at(anchor, 1, 10), _at(anchor, 2, 10)]  # what was sent stays
    assert _subjects(stack) == [f"Day {n}" for n in range(1, 7)]
    async with stack.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(TouchpointRecord)) == 6
    assert moved.events[-1].kind == "anchor"
    assert moved.events[-1].detail == "anchor moved 3d later by st-surgeon: operation rescheduled"


async def test_an_anchor_moved_earlier_skips_what_it_puts_in_the_past(time_skipping, stack):
    anchor, enrolled = await _enrolled(time_skipping, stack, _daily_messages(6))
    await _until(time_skipping, _at(anchor, 2, 12))  # days 1 and 2 sent

    await enrolled.workflow.execute_update(PathwayWorkflow.move_anchor, AnchorMove(
        anchor=_at(anchor, -2, 0), reason="date entered wrongly", actor="st-1"))
    timeline = await enrolled.workflow.result()

    # Days 3 and 4 now fall on the old days 1 and 2, already past; day 5 on the old day 3.
    assert [e.status for e in timeline.entries] == ["sent", "sent", "skipped", "skipped", "sent", "sent"]
    assert timeline.entries[2].detail == "due before the anchor it was moved to"
    assert _subjects(stack) == ["Day 1", "Day 2", "Day 5", "Day 6"]


async def test_stopping_for_good_sends_nothing_more_on_any_enrollment(time_skipping, stack):
    patient = await stack.add_patient(timezone="UTC")
    anchor, first = await _enrolled(time_skipping, stack, _daily_messages(6), patient)
    _, second = await _enrolled(time_skipping, stack, DAILY_CHECK, patient)
    await _until(time_skipping, _at(anchor, 2, 12))
    before = _subjects(stack)

    for enrolled in (first, second):
        await enrolled.workflow.execute_update(PathwayWorkflow.stop_for_good, StopForGood(
            reason="the patient has died", actor="st-1"))
    timelines = [await enrolled.workflow.result() for enrolled in (first, second)]

    assert sorted(before) == ["Check 1", "Check 2", "Day 1", "Day 2"] and sorted(_subjects(stack)) == sorted(before)
    for timeline in timelines:
        assert (timeline.status, timeline.cancel_reason) == ("stopped", "the patient has died")
        assert {e.status for e in timeline.entries[2:]} == {"cancelled"}


async def test_lifecycle_updates_are_refused_when_they_cannot_apply(time_skipping, stack):
    anchor, enrolled = await _enrolled(time_skipping, stack, _daily_messages(3))

    async def refusal(update, request) -> str:
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await enrolled.workflow.execute_update(update, request)
        return refused.value.cause.message

    assert await refusal(PathwayWorkflow.resume, ResumeRequest(actor="st-1")) == "the enrollment is not paused"
    assert await refusal(PathwayWorkflow.pause, PauseRequest(reason=" ", actor="st-1")) == "a pause needs a reason"
    await enrolled.workflow.execute_update(PathwayWorkflow.pause, PauseRequest(reason="readmitted", actor="st-1"))
    assert (await refusal(PathwayWorkflow.pause, PauseRequest(reason="again", actor="st-2"))).startswith(
        "the enrollment is already paused, since ")
    assert await refusal(PathwayWorkflow.move_anchor, AnchorMove(
        anchor=_at(anchor, 0, 0), reason="same", actor="st-1")) == "the enrollment already hangs on that anchor"
    await enrolled.workflow.execute_update(PathwayWorkflow.cancel, CancelRequest(reason="transferred"))
    timeline = await enrolled.workflow.result()
    assert timeline.status == "cancelled" and {e.status for e in timeline.entries} == {"cancelled"}
    assert timeline.paused is None  # ended while paused: it is over, not on hold


async def test_a_pause_and_what_it_holds_survive_continue_as_new(time_skipping, stack):
    # Each held occurrence takes a timer; some 250 of them grow the history past a run's limit.
    anchor, enrolled = await _enrolled(time_skipping, stack, _daily_messages(260, while_paused="send_on_resume"))
    await _until(time_skipping, _at(anchor, 1, 12))
    await enrolled.workflow.execute_update(PathwayWorkflow.pause, PauseRequest(reason="readmitted", actor="st-1"))
    await _until(time_skipping, _at(anchor, 259, 12))

    latest = stack.client.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(enrolled.enrollment.id))
    assert (await latest.describe()).run_id != enrolled.workflow.first_execution_run_id
    assert (await latest.query(PathwayWorkflow.timeline)).paused.reason == "readmitted"
    await latest.execute_update(PathwayWorkflow.resume, ResumeRequest(actor="st-1"))
    timeline = await enrolled.workflow.result()  # follows the runs

    assert [e.status for e in timeline.entries].count("sent") == 3  # day 1, day 259 on resume, day 260
    assert _subjects(stack) == ["Day 1", "Day 259", "Day 260"]


async def test_a_death_recorded_in_the_database_stops_every_delivery_without_alarming_anyone(time_skipping, stack):
    # What services/lifecycle.py records first, for the moment before every workflow has been told.
    anchor, enrolled = await _enrolled(time_skipping, stack, _daily_messages(3))
    await _until(time_skipping, _at(anchor, 1, 12))
    async with stack.sessions.begin() as session:
        patient = await session.get(Patient, enrolled.enrollment.patient_id)
        patient.deceased_at = await time_skipping.get_current_time()

    timeline = await enrolled.workflow.result()

    assert [e.status for e in timeline.entries] == ["sent", "failed", "failed"]
    assert timeline.entries[1].detail == "scheduled: the patient has died"
    assert [e.kind for e in timeline.events] == []  # no "message not delivered" escalation
    assert _subjects(stack) == ["Day 1"]
    assert [mail for mail in stack.inbox.messages if OPERATIONS_EMAIL in mail.recipients] == []
    async with stack.sessions() as session:
        records = (await session.scalars(select(TouchpointRecord).order_by(TouchpointRecord.occurrence))).all()
    assert [(r.status, r.last_error) for r in records] == [
        ("sent", None), ("cancelled", "the patient has died"), ("cancelled", "the patient has died")]


async def test_stopping_for_good_ends_a_delivery_still_waiting_out_an_outage(time_skipping, stack):
    anchor, enrolled = await _enrolled(time_skipping, stack, _daily_messages(2))
    with smtp_down(stack):
        await _until(time_skipping, _at(anchor, 1, 10) + timedelta(minutes=5))  # day 1 retrying
        stopped = await enrolled.workflow.execute_update(PathwayWorkflow.stop_for_good, StopForGood(
            reason="the patient has died", actor="st-1"))
    timeline = await enrolled.workflow.result()  # the mail relay is back: the retries would now succeed

    assert [e.status for e in stopped.entries] == ["planned", "cancelled"]  # day 1 was still on its way
    assert [e.status for e in timeline.entries] == ["cancelled", "cancelled"]
    assert _subjects(stack) == []
