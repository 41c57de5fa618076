"""Questionnaire steps on the time-skipping server: answers and rules, reminders, expiry, refusals."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError

from store.db import EscalationRecord, QuestionnaireRecord, ResponseRecord, TouchpointRecord
from services.responses import QuestionnaireClosed, submit_response
from language.validation import parse_pathway
from workflows.contracts import ResponseSubmission
from workflows.pathway import PathwayWorkflow
from services.settings import PROJECT_ROOT
from services.site import load_site

SITE = load_site(PROJECT_ROOT / "pathways")

MOOD_PATHWAY = """\
id: mood-check
version: 1
title: Mood check
anchor: delivery_date
locales: [en]
parameters:
  referral_score: {value: 10, source: "PHQ-9 >= 10, Kroenke 2001"}
escalation_policies:
  default:
    tiers: [{notify: midwives, ack_within: 1h}, {notify: obstetrics-on-call}]
steps:
  - kind: questionnaire
    id: phq9
    instrument: phq-9
    at: day 1 10:00
    remind: [24h, 48h]
    expire: 72h
    template: {en: {subject: "Mood questionnaire", body: "Please answer: {{ link }}"}}
    reminder_template: {en: {subject: "Reminder: mood questionnaire", body: "Still open: {{ link }}"}}
    on:
      - when: score >= referral_score
        tag: mood-risk
        escalate: {reason: "PHQ-9 10 or more", priority: high}
        send: support-message
      - when: "'self_harm' in flags"
        escalate: {reason: "PHQ-9 item 9", policy: crisis}
        stop: true
    on_expire:
      tag: no-response
      escalate: {reason: "No answer to the mood questionnaire", priority: routine}
  - kind: message
    id: later
    at: day 10 10:00
    template: {en: {subject: "Day ten", body: "Hello"}}
  - kind: message
    id: support-message
    template: {en: {subject: "We will call you", body: "A midwife will call you today."}}
"""

FREQUENCY = ["not_at_all", "several_days", "more_than_half_the_days", "nearly_every_day"]


def phq9(*scores: int) -> dict:
    return {f"q{number}": FREQUENCY[value] for number, value in enumerate(scores, start=1)}


def _patient_mail(stack) -> list:
    return [mail for mail in stack.inbox.messages if mail.recipients == ("patient@example.test",)]


async def _recorded_escalations(stack, count: int) -> list[EscalationRecord]:
    """Escalations run as their own workflows, recorded a moment after the pathway decides them."""
    for _ in range(100):
        async with stack.sessions() as session:
            records = (await session.scalars(select(EscalationRecord).order_by(EscalationRecord.id))).all()
        if len(records) >= count:
            return records
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} escalation(s) recorded, found {len(records)}")


async def _enroll(time_skipping, stack):
    pathway = parse_pathway(MOOD_PATHWAY, "mood.yaml", stack.instruments, SITE.teams())
    patient = await stack.add_patient(timezone="UTC")
    anchor = (await time_skipping.get_current_time()).date() + timedelta(days=1)
    enrolled = await stack.enroll(patient, pathway, anchor)
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    opens = next(e.due for e in timeline.entries if e.step_id == "phq9")
    return enrolled, opens


async def _sleep_until(time_skipping, moment):
    await time_skipping.sleep(moment - await time_skipping.get_current_time())


async def _answer(stack, enrolled, answers):
    return await submit_response(stack.sessions, stack.client, stack.instruments,
                                 enrollment_id=enrolled.enrollment.id, step_id="phq9", occurrence=1,
                                 answers=answers, source="patient")


async def test_an_answer_over_the_threshold_fires_its_rule_with_every_action(time_skipping, stack):
    enrolled, opens = await _enroll(time_skipping, stack)
    await _sleep_until(time_skipping, opens + timedelta(hours=2))

    accepted = await _answer(stack, enrolled, phq9(2, 2, 2, 1, 1, 1, 1, 1, 0))  # total 11, item 9 = 0

    assert accepted.outcome.tags == ["mood-risk"] and accepted.outcome.sent == ["support-message"]
    assert accepted.outcome.escalations == ["PHQ-9 10 or more"] and not accepted.outcome.stopped
    timeline = await enrolled.workflow.result()
    [questionnaire] = [e for e in timeline.entries if e.step_id == "phq9"]
    assert questionnaire.status == "answered"
    assert (questionnaire.response.score, questionnaire.response.band, questionnaire.response.flags) == (11, "moderate", [])
    assert timeline.tags == ["mood-risk"] and timeline.status == "completed"
    # Answered after two hours: no reminder, and the rule's message went out at once.
    subjects = [mail.subject for mail in _patient_mail(stack)]
    assert subjects == ["Mood questionnaire", "We will call you", "Day ten"]
    async with stack.sessions() as session:
        [response] = (await session.scalars(select(ResponseRecord))).all()
        questionnaire_row = await session.scalar(select(QuestionnaireRecord))
    [escalation] = await _recorded_escalations(stack, 1)
    assert (escalation.priority, escalation.reason, escalation.response_id) == ("high", "PHQ-9 10 or more", response.id)
    assert response.status == "accepted" and response.score == 11 and response.answers["q1"] == "more_than_half_the_days"
    assert questionnaire_row.status == "answered"


async def test_a_self_harm_answer_escalates_urgently_and_stops_the_pathway(time_skipping, stack):
    enrolled, opens = await _enroll(time_skipping, stack)
    await _sleep_until(time_skipping, opens + timedelta(minutes=30))

    accepted = await _answer(stack, enrolled, phq9(0, 0, 0, 0, 0, 0, 0, 0, 1))

    assert accepted.outcome.stopped and accepted.outcome.escalations == ["PHQ-9 item 9"]
    timeline = await enrolled.workflow.result()
    assert timeline.status == "stopped"
    assert [e.status for e in timeline.entries if e.step_id == "later"] == ["cancelled"]
    assert [mail.subject for mail in _patient_mail(stack)] == ["Mood questionnaire"]
    [escalation] = await _recorded_escalations(stack, 1)
    # Decided by the same rule that stopped the pathway, and still opened; the author's rule took
    # the crisis route, so the safety net adds no second escalation.
    assert (escalation.priority, escalation.policy) == ("urgent", "crisis")


async def test_silence_brings_reminders_on_time_then_expiry_and_on_expire(time_skipping, stack):
    enrolled, opens = await _enroll(time_skipping, stack)

    timeline = await enrolled.workflow.result()

    [questionnaire] = [e for e in timeline.entries if e.step_id == "phq9"]
    assert questionnaire.status == "expired" and questionnaire.reminders_sent == 2
    assert questionnaire.reminders == [opens + timedelta(hours=24), opens + timedelta(hours=48)]
    assert questionnaire.closes == opens + timedelta(hours=72)
    assert timedelta(0) <= questionnaire.at - questionnaire.closes < timedelta(seconds=1)
    assert timeline.tags == ["no-response"]
    assert any(event.kind == "escalation" and "No answer" in event.detail for event in timeline.events)
    async with stack.sessions() as session:
        sent = (await session.scalars(select(TouchpointRecord).where(TouchpointRecord.step_id == "phq9")
                                      .order_by(TouchpointRecord.due_at))).all()
        questionnaire_row = await session.scalar(select(QuestionnaireRecord))
    assert [(r.purpose, r.due_at) for r in sent] == [
        ("invitation", opens), ("reminder-1", opens + timedelta(hours=24)), ("reminder-2", opens + timedelta(hours=48))]
    assert questionnaire_row.status == "expired"
    reminders = [mail for mail in _patient_mail(stack) if mail.subject.startswith("Reminder")]
    assert len(reminders) == 2 and all("/f/" in mail.body for mail in reminders)


async def test_an_answer_received_before_expiry_and_delivered_after_it_counts(time_skipping, stack):
    """The outbox's case: stored while the workflow was unreachable, delivered once it was back."""
    enrolled, opens = await _enroll(time_skipping, stack)
    await _sleep_until(time_skipping, opens + timedelta(hours=73))

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await enrolled.workflow.execute_update(PathwayWorkflow.submit_response, ResponseSubmission(
            step_id="phq9", occurrence=1, response_id="rs_after", score=12, received_at=opens + timedelta(hours=72)))
    assert "has expired" in str(refused.value.cause)
    outcome = await enrolled.workflow.execute_update(PathwayWorkflow.submit_response, ResponseSubmission(
        step_id="phq9", occurrence=1, response_id="rs_before", score=12, received_at=opens + timedelta(hours=71)))

    assert outcome.tags == ["mood-risk"] and outcome.escalations == ["PHQ-9 10 or more"]
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    [questionnaire] = [e for e in timeline.entries if e.step_id == "phq9"]
    assert questionnaire.status == "answered" and questionnaire.response.response_id == "rs_before"
    assert timeline.tags == ["no-response", "mood-risk"]  # what expiry did stands; the answer acts too


async def test_an_answer_after_expiry_is_refused_and_changes_nothing(time_skipping, stack):
    enrolled, opens = await _enroll(time_skipping, stack)
    await _sleep_until(time_skipping, opens + timedelta(hours=73))

    with pytest.raises(QuestionnaireClosed, match="closed"):
        await _answer(stack, enrolled, phq9(3, 3, 3, 3, 3, 3, 3, 3, 3))
    # The workflow itself refuses too, whatever a client might try.
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await enrolled.workflow.execute_update(PathwayWorkflow.submit_response, ResponseSubmission(
            step_id="phq9", occurrence=1, response_id="rs_forged", score=27, band="severe", flags=["self_harm"]))
    assert "has expired" in str(refused.value.cause)

    timeline = await enrolled.workflow.result()
    [questionnaire] = [e for e in timeline.entries if e.step_id == "phq9"]
    assert questionnaire.status == "expired" and questionnaire.response is None
    assert timeline.tags == ["no-response"] and "mood-risk" not in timeline.tags
    async with stack.sessions() as session:
        assert (await session.scalars(select(ResponseRecord))).all() == []


async def test_a_second_answer_to_the_same_occurrence_is_refused(time_skipping, stack):
    enrolled, opens = await _enroll(time_skipping, stack)
    await _sleep_until(time_skipping, opens + timedelta(hours=1))
    await _answer(stack, enrolled, phq9(0, 0, 0, 0, 0, 0, 0, 0, 0))

    with pytest.raises(QuestionnaireClosed, match="already been answered"):
        await _answer(stack, enrolled, phq9(3, 3, 3, 3, 3, 3, 3, 3, 0))
    timeline = await enrolled.workflow.result()
    assert timeline.tags == [] and [e.response.score for e in timeline.entries if e.response] == [0]


async def test_free_text_that_cannot_be_screened_is_routed_as_a_possible_crisis(time_skipping, stack):
    enrolled, opens = await _enroll(time_skipping, stack)
    await _sleep_until(time_skipping, opens + timedelta(minutes=30))
    # A stored response the screening activity cannot read (its instrument is not on this worker), as
    # when the screening cannot run at all: after a few quick retries the workflow takes the worse
    # case, instead of waiting out the outage or skipping the safety net.
    async with stack.sessions.begin() as session:
        questionnaire = await session.scalar(select(QuestionnaireRecord))
        response = ResponseRecord(questionnaire_id=questionnaire.id, instrument_id="retired-instrument",
                                  answers={"note": "I cannot go on"}, source="patient")
        session.add(response)
    outcome = await enrolled.workflow.execute_update(PathwayWorkflow.submit_response, ResponseSubmission(
        step_id="phq9", occurrence=1, response_id=response.id, score=3, band="minimal", has_free_text=True))

    assert len(outcome.escalations) == 1
    [escalation] = await _recorded_escalations(stack, 1)
    assert (escalation.priority, escalation.policy) == ("urgent", "crisis")
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    [failed] = [event for event in timeline.events if event.kind == "screening_failed"]
    assert failed.detail == "free text not screened (KeyError); treated as possible crisis"
