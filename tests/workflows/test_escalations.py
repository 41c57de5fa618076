"""Escalation tiers, acknowledgement, resolution, the crisis safety net and call steps, on the
time-skipping server with the real worker, SQLite file and SMTP server."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError

from store.db import CallTaskRecord, EscalationAudit, EscalationRecord
from services.responses import submit_response
from language.validation import parse_pathway
from workflows.contracts import CallOutcome, StaffAction, escalation_workflow_id
from workflows.escalation import EscalationWorkflow
from workflows.pathway import PathwayWorkflow
from services.settings import PROJECT_ROOT
from services.site import load_site
from tests.workflows.escalation_events import started_escalation

SITE = load_site(PROJECT_ROOT / "pathways")

PATHWAY = """\
id: escalation-test
version: 1
title: Escalation test
anchor: delivery_date
locales: [en, zh-CN]
parameters:
  phq_9_threshold: {value: 10, source: "Kroenke 2001: PHQ-9 >= 10 moderate depression"}
escalation_policies:
  mood:
    priority: high
    tiers:
      - {notify: midwives, ack_within: 30m}
      - {notify: obstetrics-on-call}
steps:
  - kind: questionnaire
    id: phq9
    instrument: phq-9
    at: day 1 10:00
    expire: 72h
    template:
      en: {subject: "Mood", body: "{{ link }}"}
      zh-CN: {subject: "心情", body: "{{ link }}"}
    on:
      - when: score >= phq_9_threshold
        escalate: {reason: "PHQ-9 10 or more", policy: mood}
  - kind: questionnaire
    id: check
    instrument: postnatal-check
    at: day 2 10:00
    expire: 72h
    template:
      en: {subject: "Check", body: "{{ link }}"}
      zh-CN: {subject: "检查", body: "{{ link }}"}
  - kind: call
    id: follow-up-call
    at: day 5 10:00
    team: follow-up-nurses
    retry: {every: 1d, times: 3}
    script: {en: "Ask how things are.", zh-CN: "询问近况。"}
    on_not_reached:
      escalate: {reason: "Not reached by phone", policy: mood}
"""
FREQUENCY = ["not_at_all", "several_days", "more_than_half_the_days", "nearly_every_day"]
PHQ9_TOTAL_15 = {f"q{n}": FREQUENCY[v] for n, v in enumerate([2, 2, 2, 2, 2, 2, 2, 1, 0], start=1)}
WELL = {"feeding_method": "breast_only", "lochia": "normal", "wound_problem": "no", "temperature": "36.8",
        "breast_pain": "no", "baby_feeding_poorly": "no", "baby_jaundice": "no"}
MIDWIFE = StaffAction(staff_id="st_midwife", team="midwives")


async def _start(time_skipping, stack, locale="en"):
    pathway = parse_pathway(PATHWAY, "escalation.yaml", stack.instruments, SITE.teams())
    patient = await stack.add_patient(given_name="Meiling", locale=locale, timezone="UTC")
    anchor = (await time_skipping.get_current_time()).date() + timedelta(days=1)
    enrolled = await stack.enroll(patient, pathway, anchor)
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    due = {entry.step_id: entry.due for entry in timeline.entries}
    return enrolled, due


async def _skip_to(time_skipping, moment):
    await time_skipping.sleep(moment - await time_skipping.get_current_time())


async def _answer(stack, enrolled, step_id, answers):
    return await submit_response(stack.sessions, stack.client, stack.instruments, enrollment_id=enrolled.enrollment.id,
                                 step_id=step_id, occurrence=1, answers=answers, source="patient")


async def _escalation(stack, enrolled, number=1):
    escalation_id = await started_escalation(enrolled.workflow, number)
    return stack.client.get_workflow_handle_for(EscalationWorkflow.run, escalation_workflow_id(escalation_id))


async def _escalation_at_tier_one(time_skipping, stack):
    enrolled, due = await _start(time_skipping, stack)
    await _skip_to(time_skipping, due["phq9"] + timedelta(hours=1))
    await _answer(stack, enrolled, "phq9", PHQ9_TOTAL_15)
    escalation = await _escalation(stack, enrolled)
    for _ in range(100):  # the child's first task notifies tier 1; wait for it in real time
        if (await escalation.query(EscalationWorkflow.state)).notified:
            break
        await asyncio.sleep(0.05)
    return enrolled, escalation


def _mail_to(stack, address):
    return [mail for mail in stack.inbox.messages if address in mail.recipients]


async def test_without_acknowledgement_tier_two_is_told_exactly_at_ack_within(time_skipping, stack):
    _, escalation = await _escalation_at_tier_one(time_skipping, stack)
    opened = (await escalation.query(EscalationWorkflow.state)).notified[0].at

    await _skip_to(time_skipping, opened + timedelta(minutes=30, seconds=5))

    state = await escalation.query(EscalationWorkflow.state)
    assert [(n.team, n.tier) for n in state.notified] == [("midwives", 1), ("obstetrics-on-call", 2)]
    assert abs((state.notified[1].at - opened) - timedelta(minutes=30)) < timedelta(seconds=1)
    [tier_two] = _mail_to(stack, "obstetrics-on-call@carepath.localhost")
    assert tier_two.subject == "[HIGH] carepath escalation: PHQ-9 10 or more" and "Tier: 2" in tier_two.body
    assert "Meiling" not in tier_two.body and "/enrollments/" in tier_two.body


async def test_an_acknowledgement_in_time_stops_the_ladder_and_a_resolution_closes(time_skipping, stack):
    _, escalation = await _escalation_at_tier_one(time_skipping, stack)
    opened = (await escalation.query(EscalationWorkflow.state)).notified[0].at
    await _skip_to(time_skipping, opened + timedelta(minutes=20))

    with pytest.raises(WorkflowUpdateFailedError):  # a team that was never asked cannot take it
        await escalation.execute_update(EscalationWorkflow.acknowledge, StaffAction(staff_id="st_x", team="crisis"))
    acknowledged = await escalation.execute_update(EscalationWorkflow.acknowledge, MIDWIFE)
    await _skip_to(time_skipping, opened + timedelta(hours=2))

    state = await escalation.query(EscalationWorkflow.state)
    assert acknowledged.status == state.status == "acknowledged" and len(state.notified) == 1
    assert _mail_to(stack, "obstetrics-on-call@carepath.localhost") == []
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await escalation.execute_update(EscalationWorkflow.acknowledge, MIDWIFE)
    assert "already acknowledged" in str(refused.value.cause)

    await escalation.execute_update(EscalationWorkflow.resolve, MIDWIFE)
    final = await escalation.result()
    assert final.status == "resolved" and final.resolved_by == "st_midwife"
    async with stack.sessions() as session:
        record = await session.get(EscalationRecord, final.escalation_id)
        audit = (await session.scalars(select(EscalationAudit).order_by(EscalationAudit.id))).all()
    assert (record.status, record.acknowledged_by, record.resolved_by) == ("resolved", "st_midwife", "st_midwife")
    assert [(a.action, a.actor) for a in audit] == [
        ("opened", "system"), ("notified", "system"), ("acknowledged", "st_midwife"), ("resolved", "st_midwife")]
    assert abs(audit[2].at - audit[1].at - timedelta(minutes=20)) < timedelta(seconds=1)


@pytest.mark.parametrize("locale, words", [("zh-CN", "最近太累了，我真的不想活了"), ("en", "Some nights I want to end my life.")])
async def test_crisis_words_open_an_urgent_escalation_and_never_enter_history(time_skipping, stack, locale, words):
    enrolled, due = await _start(time_skipping, stack, locale=locale)
    await _skip_to(time_skipping, due["check"] + timedelta(hours=1))

    accepted = await _answer(stack, enrolled, "check", WELL | {"anything_else": words})

    # Decided when the update returns: the workflow task that took the screening's answer.
    assert accepted.outcome.escalations == ["Crisis language or a self-harm answer: assess suicide risk now"]
    escalation = await _escalation(stack, enrolled)
    state = await escalation.query(EscalationWorkflow.state)
    assert state.priority == "urgent"
    for _ in range(400):  # the email goes by SMTP, in real time, while the clock is still
        if _mail_to(stack, "crisis@carepath.localhost"):
            break
        await asyncio.sleep(0.05)
    [alert] = _mail_to(stack, "crisis@carepath.localhost")
    assert alert.subject.startswith("[URGENT]") and words not in alert.body
    for handle in (enrolled.workflow, escalation):
        history = (await handle.fetch_history()).to_json()
        assert words not in history and words.encode("unicode_escape").decode() not in history
        assert "Meiling" not in history


async def test_a_call_not_reached_is_retried_then_escalated(time_skipping, stack):
    enrolled, due = await _start(time_skipping, stack)
    moment = due["follow-up-call"]
    for attempt in (1, 2, 3):
        await _skip_to(time_skipping, moment + timedelta(minutes=5))
        moment = await time_skipping.get_current_time() + timedelta(days=1)  # the next try, a day after this one
        timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
        [call] = [e for e in timeline.entries if e.kind == "call"]
        assert (call.status, call.attempts) == ("open", attempt)
        await enrolled.workflow.execute_update(PathwayWorkflow.record_call_outcome, CallOutcome(
            step_id="follow-up-call", occurrence=1, outcome="not_reached", staff_id="st_nurse"))

    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    [call] = [e for e in timeline.entries if e.kind == "call"]
    assert (call.status, call.attempts) == ("not_reached", 3)
    assert call.outcome.escalations == ["Not reached by phone"]
    await enrolled.workflow.result()
    async with stack.sessions() as session:
        tasks = (await session.scalars(select(CallTaskRecord).order_by(CallTaskRecord.attempt))).all()
    assert [(t.attempt, t.team, t.script) for t in tasks] == [(n, "follow-up-nurses", "Ask how things are.") for n in (1, 2, 3)]
    gaps = [later.due_at - earlier.due_at for earlier, later in zip(tasks, tasks[1:])]
    assert all(timedelta(days=1) <= gap < timedelta(days=1, minutes=10) for gap in gaps)
