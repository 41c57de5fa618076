"""Steps written `after` another, on the time-skipping server with the real worker: a follow-up due two
days after the answer comes then, and never without the answer."""

from datetime import timedelta

from language.validation import parse_pathway
from services.responses import submit_response
from services.settings import PROJECT_ROOT
from services.site import load_site
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")

PATHWAY = """\
id: following-test
version: 1
title: Following test
anchor: surgery_date
locales: [en]
steps:
  - kind: questionnaire
    id: day3-check
    instrument: phq-9
    at: day 3 10:00
    expire: 72h
    template: {en: {subject: "Day three check", body: "{{ link }}"}}
  - kind: message
    id: answer-follow-up
    after: {step: day3-check, answered: 2d}
    template: {en: {subject: "Two days after your answer", body: "How are you now?"}}
  - kind: message
    id: after-last
    after: {step: answer-follow-up, sent: 1h}
    template: {en: {subject: "An hour after the follow-up", body: "Still there?"}}
"""
NOT_AT_ALL = {f"q{number}": "not_at_all" for number in range(1, 10)}


async def _enroll(time_skipping, stack):
    pathway = parse_pathway(PATHWAY, "following.yaml", stack.instruments, SITE.teams())
    patient = await stack.add_patient(timezone="UTC")
    anchor = (await time_skipping.get_current_time()).date() + timedelta(days=1)
    enrolled = await stack.enroll(patient, pathway, anchor)
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    return enrolled, timeline


async def test_a_step_after_an_answer_comes_that_long_after_it_and_its_own_follower_after_it(time_skipping, stack):
    enrolled, planned = await _enroll(time_skipping, stack)
    assert [entry.step_id for entry in planned.entries] == ["day3-check"]  # the followers wait for their moment
    [opens] = [entry.due for entry in planned.entries]
    await time_skipping.sleep(opens + timedelta(hours=5) - await time_skipping.get_current_time())

    await submit_response(stack.sessions, stack.client, stack.instruments, enrollment_id=enrolled.enrollment.id,
                          step_id="day3-check", occurrence=1, answers=NOT_AT_ALL, source="patient")
    answered = next(e.at for e in (await enrolled.workflow.query(PathwayWorkflow.timeline)).entries
                    if e.step_id == "day3-check")

    timeline = await enrolled.workflow.result()
    entries = {entry.step_id: entry for entry in timeline.entries}
    follow_up, after_last = entries["answer-follow-up"], entries["after-last"]
    assert (follow_up.status, follow_up.follows, follow_up.due) == ("sent", "day3-check#1", answered + timedelta(days=2))
    assert (after_last.status, after_last.follows) == ("sent", "answer-follow-up#1")
    assert after_last.due == follow_up.at + timedelta(hours=1)
    delivered = await stack.deliveries(enrolled.enrollment.id, opens.tzinfo)
    assert [(d.step, d.subject) for d in delivered] == [
        ("day3-check", "Day three check"), ("answer-follow-up", "Two days after your answer"),
        ("after-last", "An hour after the follow-up")]


async def test_without_an_answer_the_step_that_follows_it_never_comes(time_skipping, stack):
    enrolled, _ = await _enroll(time_skipping, stack)

    timeline = await enrolled.workflow.result()

    assert [(entry.step_id, entry.status) for entry in timeline.entries] == [("day3-check", "expired")]
    assert timeline.status == "completed"
