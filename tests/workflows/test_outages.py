"""Long outages on the time-skipping server, with the real worker, SQLite file and SMTP server: the
mail relay down for most of a day, the database down for two hours. What was due goes afterwards,
once, inside the send window; what only a person can fix reaches operations."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site
from store.db import Enrollment, EscalationRecord, QuestionnaireRecord, TouchpointRecord
from tests.workflows.faults import database_down, smtp_down
from tools.simulation import OPERATIONS_EMAIL
from workflows import retries
from workflows.contracts import CancelRequest
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")
ZONE = ZoneInfo("Asia/Shanghai")
PATHWAY = """\
id: outages
version: 1
title: Outages
anchor: start
send_window: "09:00-20:00"
locales: [en]
steps:
  - kind: message
    id: hello
    at: day 1 10:00
    template: {en: {subject: "Hello", body: "Dear {{ patient.first_name }}"}}
  - kind: questionnaire
    id: check
    instrument: satisfaction
    at: day 1 10:30
    expire: 48h
    template: {en: {subject: "How are you?", body: "{{ link }}"}}
  - kind: message
    id: later
    at: day 1 11:00
    template: {en: {subject: "Later", body: "Still here"}}
"""


async def _skip_to(time_skipping, moment: datetime) -> None:
    await time_skipping.sleep(moment - await time_skipping.get_current_time())


async def _enroll(time_skipping, stack):
    pathway = parse_pathway(PATHWAY, "outages.yaml", stack.instruments, SITE.teams())
    patient = await stack.add_patient(given_name="Lan", timezone="Asia/Shanghai")
    today = (await time_skipping.get_current_time()).astimezone(ZONE).date()
    enrolled = await stack.enroll(patient, pathway, today + timedelta(days=1), timezone="Asia/Shanghai")
    due = {entry.step_id: entry.due for entry in (await enrolled.workflow.query(PathwayWorkflow.timeline)).entries}
    return enrolled, due


async def _mail(stack, count: int, who: str = "patient@example.test") -> list:
    for _ in range(200):
        mails = [mail for mail in stack.inbox.messages if who in mail.recipients]
        if len(mails) >= count:
            return mails
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} mail(s) to {who}; the inbox has {[m.subject for m in stack.inbox.messages]}")


async def test_a_message_held_up_by_a_mail_relay_down_overnight_goes_once_when_the_window_next_opens(
        time_skipping, stack):
    enrolled, due = await _enroll(time_skipping, stack)
    day_2 = due["hello"].astimezone(ZONE).date() + timedelta(days=1)

    await _skip_to(time_skipping, due["hello"] - timedelta(hours=1))
    with smtp_down(stack):
        # Down from 09:00 on day 1 to 08:00 on day 2: tried until the window closed at 20:00, then waiting.
        await _skip_to(time_skipping, datetime.combine(day_2, datetime.min.time(), ZONE) + timedelta(hours=8))
        timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
        assert [entry.status for entry in timeline.entries if entry.step_id == "hello"] == ["planned"]
    await _skip_to(time_skipping, datetime.combine(day_2, datetime.min.time(), ZONE) + timedelta(hours=12))

    mails = await _mail(stack, 3)
    assert [mail.subject for mail in mails].count("Hello") == 1
    assert len({mail.message_id for mail in mails}) == len(mails)
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    by_step = {entry.step_id: entry for entry in timeline.entries}
    assert {step: entry.status for step, entry in by_step.items()} == {"hello": "sent", "check": "open",
                                                                         "later": "sent"}
    # Sent when the window opened on day 2, not in the night the relay came back.
    sent = by_step["hello"].at.astimezone(ZONE)
    assert sent.date() == day_2 and "09:00" <= f"{sent:%H:%M}" < "09:05", sent
    async with stack.sessions() as session:
        hello = await session.scalar(select(TouchpointRecord).where(TouchpointRecord.step_id == "hello"))
    assert hello.status == "sent" and hello.attempts > 10  # tried all day 1, sent once
    assert not [mail for mail in stack.inbox.messages if OPERATIONS_EMAIL in mail.recipients]


async def test_a_message_that_cannot_go_for_a_day_reaches_the_operations_worklist(time_skipping, stack):
    enrolled, due = await _enroll(time_skipping, stack)

    await _skip_to(time_skipping, due["hello"] - timedelta(hours=1))
    with smtp_down(stack):
        await _skip_to(time_skipping, due["hello"] + retries.DELIVERY_GIVE_UP + timedelta(hours=1))
        timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
        [hello] = [entry for entry in timeline.entries if entry.step_id == "hello"]
        assert hello.status == "failed" and "SMTP server unreachable" in hello.detail
        # Its questionnaire's invitation and `later`, due after it, went on beside it and fail in their turn.
        [event] = [event for event in timeline.events if event.kind == "escalation" and "hello#1" in event.detail]
        for _ in range(200):
            async with stack.sessions() as session:
                escalation = await session.get(EscalationRecord, event.escalation_id)
            if escalation is not None:
                break
            await asyncio.sleep(0.05)

    assert (escalation.team, escalation.priority, escalation.status) == ("operations", "high", "open")
    assert escalation.reason.startswith("hello#1 could not be delivered: scheduled: SMTP server unreachable")
    assert "Lan" not in escalation.reason
    assert timeline.status == "active"  # the pathway went on: its later steps were tried in their turn


async def test_the_database_down_for_two_hours_delays_the_enrollment_and_loses_nothing(time_skipping, stack):
    enrolled, due = await _enroll(time_skipping, stack)
    await _skip_to(time_skipping, due["hello"] + timedelta(minutes=5))
    await _mail(stack, 1)

    down_at = await time_skipping.get_current_time()
    with database_down():
        # The questionnaire opens at 10:30 (a database write), and `later` waits behind it.
        await _skip_to(time_skipping, down_at + timedelta(hours=2))
        # Operations were told once the database had been silent for BOOKKEEPING_STALL.
        [alert] = await _mail(stack, 1, OPERATIONS_EMAIL)
        assert alert.subject == ("[carepath operations] the database has not answered "
                                 f"(enrollment {enrolled.enrollment.id})")
        assert "open_questionnaire still failing" in alert.body
        timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
        assert {entry.step_id: entry.status for entry in timeline.entries}["later"] == "planned"
    await _skip_to(time_skipping, down_at + timedelta(hours=2, minutes=15))

    mails = await _mail(stack, 3)
    assert sorted(mail.subject for mail in mails) == ["Hello", "How are you?", "Later"]
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    assert timeline.status == "active"
    assert {entry.step_id: entry.status for entry in timeline.entries} == {"hello": "sent", "check": "open",
                                                                           "later": "sent"}
    async with stack.sessions() as session:
        [questionnaire] = (await session.scalars(select(QuestionnaireRecord))).all()
        sent = (await session.scalars(select(TouchpointRecord).where(TouchpointRecord.status == "sent"))).all()
    assert questionnaire.status == "open" and questionnaire.step_id == "check"
    assert sorted((record.step_id, record.purpose) for record in sent) == [
        ("check", "invitation"), ("hello", "scheduled"), ("later", "scheduled")]


async def test_cancelling_while_a_message_waits_out_an_outage_closes_the_forms_at_once(time_skipping, stack):
    enrolled, due = await _enroll(time_skipping, stack)
    await _skip_to(time_skipping, due["hello"] - timedelta(hours=1))
    with smtp_down(stack):
        await _skip_to(time_skipping, due["check"] + timedelta(minutes=5))  # hello waiting, check open
        await enrolled.workflow.execute_update(PathwayWorkflow.cancel, CancelRequest(reason="moved away"))
        for _ in range(200):
            async with stack.sessions() as session:
                enrollment = await session.get(Enrollment, enrolled.enrollment.id)
                questionnaire = await session.scalar(select(QuestionnaireRecord))
            if enrollment.status == "cancelled":
                break
            await asyncio.sleep(0.05)
        assert (enrollment.status, questionnaire.status) == ("cancelled", "closed")
        timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
        assert {entry.step_id: entry.status for entry in timeline.entries} == {
            "hello": "planned", "check": "open", "later": "cancelled"}  # the first two still being delivered
    # The run ends once they have gone (or finally failed): nothing sent is lost from the record.
    timeline = await enrolled.workflow.result()
    assert timeline.status == "cancelled"
    assert {entry.step_id: entry.status for entry in timeline.entries} == {
        "hello": "sent", "check": "cancelled", "later": "cancelled"}
