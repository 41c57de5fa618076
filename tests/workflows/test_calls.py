"""A call outcome and the retry that reopens the call: refused before the next attempt falls due,
applied to that attempt once it does, on the time-skipping server with the real worker."""

from datetime import timedelta

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage

from language.validation import parse_pathway
from services.responses import submit_response
from services.settings import PROJECT_ROOT
from services.site import load_site
from store.db import CallTaskRecord
from workflows.contracts import CallOutcome, CancelRequest, StaffAction, escalation_workflow_id
from workflows.escalation import EscalationWorkflow
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")

# A call retried daily, and a questionnaire whose escalation holds the whole pathway: while it
# holds, the call's next attempt falls due without being opened.
PATHWAY = """\
id: call-retry-test
version: 1
title: Call retry test
anchor: delivery_date
locales: [en]
parameters:
  phq_9_threshold: {value: 10, source: "Kroenke 2001: PHQ-9 >= 10 moderate depression"}
escalation_policies:
  hold:
    tiers: [{notify: midwives}]
    pause_pathway: true
steps:
  - kind: call
    id: follow-up-call
    at: day 1 10:00
    team: follow-up-nurses
    retry: {every: 1d, times: 3}
    script: {en: "Ask how things are."}
  - kind: questionnaire
    id: phq9
    instrument: phq-9
    at: day 1 12:00
    expire: 72h
    template:
      en: {subject: "Mood", body: "{{ link }}"}
    on:
      - when: score >= phq_9_threshold
        escalate: {reason: "PHQ-9 10 or more", policy: hold}
"""
FREQUENCY = ["not_at_all", "several_days", "more_than_half_the_days", "nearly_every_day"]
PHQ9_TOTAL_15 = {f"q{n}": FREQUENCY[v] for n, v in enumerate([2, 2, 2, 2, 2, 2, 2, 1, 0], start=1)}
NOT_REACHED = CallOutcome(step_id="follow-up-call", occurrence=1, outcome="not_reached", staff_id="st_nurse")
REACHED = CallOutcome(step_id="follow-up-call", occurrence=1, outcome="reached", staff_id="st_nurse")


async def _skip_to(time_skipping, moment):
    await time_skipping.sleep(moment - await time_skipping.get_current_time())


async def _call(enrolled):
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    [call] = [e for e in timeline.entries if e.kind == "call"]
    return call


async def _not_reached_then_held(time_skipping, stack):
    """Attempt 1 not reached; then the pathway is held while attempt 2 falls due, unopened."""
    pathway = parse_pathway(PATHWAY, "call-retry.yaml", stack.instruments, SITE.teams())
    patient = await stack.add_patient(locale="en", timezone="UTC")
    anchor = (await time_skipping.get_current_time()).date() + timedelta(days=1)
    enrolled = await stack.enroll(patient, pathway, anchor)
    due = {e.step_id: e.due for e in (await enrolled.workflow.query(PathwayWorkflow.timeline)).entries}
    await _skip_to(time_skipping, due["follow-up-call"] + timedelta(minutes=5))
    await enrolled.workflow.execute_update(PathwayWorkflow.record_call_outcome, NOT_REACHED)
    await _skip_to(time_skipping, due["phq9"] + timedelta(minutes=5))
    await submit_response(stack.sessions, stack.client, stack.instruments, enrollment_id=enrolled.enrollment.id,
                          step_id="phq9", occurrence=1, answers=PHQ9_TOTAL_15, source="patient")
    await _skip_to(time_skipping, due["follow-up-call"] + timedelta(days=1, minutes=10))
    call = await _call(enrolled)
    assert (call.status, call.attempts) == ("planned", 1)
    return enrolled


async def test_an_outcome_before_the_next_attempt_falls_due_is_refused_naming_the_call(time_skipping, stack):
    pathway = parse_pathway(PATHWAY, "call-retry.yaml", stack.instruments, SITE.teams())
    patient = await stack.add_patient(locale="en", timezone="UTC")
    anchor = (await time_skipping.get_current_time()).date() + timedelta(days=1)
    enrolled = await stack.enroll(patient, pathway, anchor)
    call = await _call(enrolled)
    await _skip_to(time_skipping, call.due + timedelta(minutes=5))
    await enrolled.workflow.execute_update(PathwayWorkflow.record_call_outcome, NOT_REACHED)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await enrolled.workflow.execute_update(PathwayWorkflow.record_call_outcome, REACHED)

    assert "call follow-up-call #1 is not open: attempt 2 opens at " in str(refused.value.cause)
    assert (await _call(enrolled)).status == "planned"


async def test_an_outcome_once_the_next_attempt_is_due_applies_to_that_attempt(time_skipping, stack):
    enrolled = await _not_reached_then_held(time_skipping, stack)

    pending = await enrolled.workflow.start_update(PathwayWorkflow.record_call_outcome, REACHED,
                                                   wait_for_stage=WorkflowUpdateStage.ACCEPTED)
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    [escalation] = [e.escalation_id for e in timeline.events if e.kind == "escalation"]
    held = stack.client.get_workflow_handle_for(EscalationWorkflow.run, escalation_workflow_id(escalation))
    await held.execute_update(EscalationWorkflow.resolve, StaffAction(staff_id="st_midwife", team="midwives"))

    await pending.result()
    call = await _call(enrolled)
    assert (call.status, call.attempts) == ("reached", 2)
    async with stack.sessions() as session:
        tasks = (await session.scalars(select(CallTaskRecord).order_by(CallTaskRecord.attempt))).all()
    assert [t.attempt for t in tasks] == [1, 2]


async def test_an_outcome_waiting_for_its_attempt_is_refused_if_the_enrollment_ends_first(time_skipping, stack):
    enrolled = await _not_reached_then_held(time_skipping, stack)
    pending = await enrolled.workflow.start_update(PathwayWorkflow.record_call_outcome, REACHED,
                                                   wait_for_stage=WorkflowUpdateStage.ACCEPTED)

    await enrolled.workflow.execute_update(PathwayWorkflow.cancel, CancelRequest(reason="moved away"))

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await pending.result()
    assert str(refused.value.cause) == "call follow-up-call #1 is cancelled, not waiting for an outcome"
