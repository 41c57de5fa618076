"""Events into a running enrollment, on the time-skipping server with the real worker: a lab result
fires its rule (tag, phone task, escalation), and what the pathway cannot take changes nothing."""

from datetime import timedelta

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError

from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site
from store.db import CallTaskRecord
from workflows.contracts import CancelRequest, EnrollmentEvent
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")

PATHWAY = """\
id: event-test
version: 1
title: Events test
anchor: delivery_date
locales: [en]
parameters:
  hb_threshold_g_dl: {value: 10, source: "Postpartum anaemia: Hb below 10 g/dL (local protocol)"}
escalation_policies:
  default:
    tiers: [{notify: midwives}]
events:
  lab-result:
    fields:
      hb_g_dl: {type: number, min: 3, max: 25}
      comment: {type: text, required: false}
on_event:
  - event: lab-result
    when: hb_g_dl < hb_threshold_g_dl
    tag: anaemia
    call: anaemia-call
    escalate: {reason: "Hb below 10 g/dL after birth"}
steps:
  - kind: message
    id: day-7
    at: day 7 10:00
    template:
      en: {subject: "Day 7", body: "Dear {{ patient.first_name }}, how are you?"}
  - kind: call
    id: anaemia-call
    team: follow-up-nurses
    script: {en: "Explain the blood result and book iron treatment."}
"""


async def _enrolled(time_skipping, stack):
    pathway = parse_pathway(PATHWAY, "event-test.yaml", stack.instruments, SITE.teams())
    patient = await stack.add_patient(locale="en", timezone="UTC")
    anchor = (await time_skipping.get_current_time()).date()
    return await stack.enroll(patient, pathway, anchor)


async def test_a_low_haemoglobin_result_tags_opens_a_call_and_escalates(time_skipping, stack):
    enrolled = await _enrolled(time_skipping, stack)

    outcome = await enrolled.workflow.execute_update(
        PathwayWorkflow.record_event, EnrollmentEvent(event_id="ev_1", type="lab-result", values={"hb_g_dl": 8.2}),
        id="ev_1")
    await time_skipping.sleep(timedelta(minutes=1))

    assert (outcome.tags, outcome.calls, outcome.escalations) == (
        ["anaemia"], ["anaemia-call"], ["Hb below 10 g/dL after birth"])
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    entries = {entry.key: entry for entry in timeline.entries}
    assert (entries["lab-result#1"].kind, entries["lab-result#1"].status) == ("event", "received")
    assert entries["lab-result#1"].outcome == outcome
    assert entries["anaemia-call#1"].status == "open"
    assert entries["day-7#1"].status == "planned", "the plan goes on"
    assert timeline.tags == ["anaemia"]
    assert [(event.kind, event.detail) for event in timeline.events if event.kind in ("event", "escalation")] == [
        ("event", "lab-result#1: hb_g_dl 8.2"),
        ("escalation", "high: Hb below 10 g/dL after birth (lab-result#1, rule 1: hb_g_dl < hb_threshold_g_dl)")]
    async with stack.sessions() as session:
        [task] = (await session.scalars(select(CallTaskRecord))).all()
    assert (task.step_id, task.team) == ("anaemia-call", "follow-up-nurses")


async def test_a_normal_result_is_recorded_and_fires_nothing(time_skipping, stack):
    enrolled = await _enrolled(time_skipping, stack)

    outcome = await enrolled.workflow.execute_update(
        PathwayWorkflow.record_event, EnrollmentEvent(event_id="ev_2", type="lab-result", values={"hb_g_dl": 12.4}))

    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    assert outcome.tags == outcome.calls == outcome.escalations == []
    assert [(e.key, e.status) for e in timeline.entries if e.kind == "event"] == [("lab-result#1", "received")]
    assert timeline.tags == []


@pytest.mark.parametrize(("event", "why"), [
    (EnrollmentEvent(event_id="ev_3", type="lab-result", values={"hb_g_dl": "low"}),
     "lab-result hb_g_dl: expected a number, not 'low'"),
    (EnrollmentEvent(event_id="ev_4", type="lab-result", values={"hb_g_dl": 91}),
     "lab-result hb_g_dl: 91 is above the highest plausible value, 25"),
    (EnrollmentEvent(event_id="ev_5", type="lab-result", values={"comment": "looks anaemic"}),
     "the lab-result event has no field 'comment' that rules read"),
    (EnrollmentEvent(event_id="ev_6", type="bp-reading", values={"systolic": 150}),
     "pathway event-test v1 takes no event 'bp-reading' (it takes: lab-result)"),
])
async def test_an_event_the_pathway_cannot_take_is_refused_and_changes_nothing(time_skipping, stack, event, why):
    enrolled = await _enrolled(time_skipping, stack)
    before = await enrolled.workflow.query(PathwayWorkflow.timeline)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await enrolled.workflow.execute_update(PathwayWorkflow.record_event, event)

    assert refused.value.cause.message == why
    assert await enrolled.workflow.query(PathwayWorkflow.timeline) == before


async def test_an_ended_enrollment_takes_no_events(time_skipping, stack):
    enrolled = await _enrolled(time_skipping, stack)
    await enrolled.workflow.execute_update(PathwayWorkflow.cancel, CancelRequest(reason="moved away"))

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await enrolled.workflow.execute_update(
            PathwayWorkflow.record_event, EnrollmentEvent(event_id="ev_7", type="lab-result", values={"hb_g_dl": 8.0}))

    assert refused.value.cause.message == "the enrollment is cancelled; it takes no more events"


async def test_an_enrollment_waiting_only_on_an_open_call_still_takes_events(time_skipping, stack):
    """Past its last planned touchpoint, a run that waits for a call's outcome is still running: an event is
    taken and acted on (it raised AttributeError in the update validator before)."""
    enrolled = await _enrolled(time_skipping, stack)
    await enrolled.workflow.execute_update(
        PathwayWorkflow.record_event, EnrollmentEvent(event_id="ev_8", type="lab-result", values={"hb_g_dl": 8.0}))
    await time_skipping.sleep(timedelta(days=8))
    waiting = await enrolled.workflow.query(PathwayWorkflow.timeline)
    assert (waiting.status, waiting.next_due) == ("active", None), "nothing left on the agenda"
    assert {e.key: e.status for e in waiting.entries}["anaemia-call#1"] == "open"

    outcome = await enrolled.workflow.execute_update(
        PathwayWorkflow.record_event, EnrollmentEvent(event_id="ev_9", type="lab-result", values={"hb_g_dl": 7.6}))

    assert outcome.calls == ["anaemia-call"]
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    assert [(e.key, e.status) for e in timeline.entries if e.kind == "event"] == [
        ("lab-result#1", "received"), ("lab-result#2", "received")]
