"""What only a person can fix reaches the operations staff, and the pathway goes on: a message that
finally cannot go. (The other alert, our database not answering for BOOKKEEPING_STALL, waits on a
timer beside a retrying activity, which the time-skipping server does not skip; it has no test yet.)"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site
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
    [alert] = await mail_to_operations(stack)

    assert alert.subject == f"[carepath operations] a message could not be delivered (enrollment {enrolled.enrollment.id})"
    assert "hello#1" in alert.body and "no email address" in alert.body and "Nomail" not in alert.body
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    assert [entry.status for entry in timeline.entries if entry.step_id == "hello"] == ["failed"]
    assert timeline.status == "active"  # the pathway goes on
