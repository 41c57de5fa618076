"""What only a person can fix reaches the operations staff, and the pathway goes on: a message that
finally cannot go is emailed to them and put on the operations team's worklist. (The other alert, our
database not answering for BOOKKEEPING_STALL, is shown in test_outages.py.)"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site
from store.db import EscalationRecord
from tools.simulation import OPERATIONS_EMAIL
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")
PATHWAY = """\
id: alerts
version: 1
title: Alerts
anchor: start
locales: [en]
steps:
  - kind: message
    id: hello
    at: day 1 09:00
    template: {en: {subject: "Hello", body: "Dear {{ patient.first_name }}"}}
  - kind: questionnaire
    id: check
    instrument: phq-9
    at: day 2 09:00
    expire: 24h
    template: {en: {subject: "How are you?", body: "{{ link }}"}}
"""


def parsed(stack):
    return parse_pathway(PATHWAY, "alerts.yaml", stack.instruments, SITE.teams())


async def mail_to_operations(stack, count: int = 1):
    for _ in range(200):
        mails = [mail for mail in stack.inbox.messages if OPERATIONS_EMAIL in mail.recipients]
        if len(mails) >= count:
            return mails
        await asyncio.sleep(0.05)
    raise AssertionError(f"operations were not told; the inbox has {[m.subject for m in stack.inbox.messages]}")


async def test_a_message_that_cannot_be_delivered_is_told_to_operations(time_skipping, stack):
    patient = await stack.add_patient(given_name="Nomail", email=None)
    enrolled = await stack.enroll(patient, parsed(stack), (await time_skipping.get_current_time()).date())

    [hello, _] = (await enrolled.workflow.query(PathwayWorkflow.timeline)).entries
    await time_skipping.sleep(hello.due + timedelta(minutes=1) - await time_skipping.get_current_time())
    mails = await mail_to_operations(stack, 2)
    [alert] = [mail for mail in mails if mail.subject.startswith("[carepath operations]")]

    assert alert.subject == f"[carepath operations] a message could not be delivered (enrollment {enrolled.enrollment.id})"
    assert "hello#1" in alert.body and "no email address" in alert.body and "Nomail" not in alert.body
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    assert [entry.status for entry in timeline.entries if entry.step_id == "hello"] == ["failed"]
    assert timeline.status == "active"  # the pathway goes on
    # and the operations team has it on its worklist, told like any team (its address is the alert's here)
    [event] = [event for event in timeline.events if event.kind == "escalation"]
    async with stack.sessions() as session:
        escalation = await session.get(EscalationRecord, event.escalation_id)
    assert (escalation.team, escalation.status) == ("operations", "open")
    assert escalation.reason == "hello#1 could not be delivered: scheduled: the patient has no email address"
    assert [mail for mail in mails if mail is not alert and escalation.reason in mail.body]
