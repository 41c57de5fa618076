"""Fail safe on the escalation path: a channel that is down, a last tier nobody answers, an
acknowledged escalation nobody resolves. On the time-skipping server with the real worker, SQLite
file and SMTP server; a team's webhook is a small HTTP server on loopback."""

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import select, update

from language.validation import parse_pathway
from services.responses import submit_response
from services.settings import PROJECT_ROOT
from services.site import load_site
from store.db import EscalationAudit, EscalationRecord, TeamRecord
from tests.workflows.escalation_events import started_escalation
from tests.workflows.faults import smtp_down
from workflows.contracts import StaffAction, escalation_workflow_id
from workflows.escalation import EscalationWorkflow
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")
PATHWAY = """\
id: escalation-faults
version: 1
title: Escalation faults
anchor: delivery_date
locales: [en]
parameters:
  phq_9_threshold: {value: 10, source: "Kroenke 2001: PHQ-9 >= 10 moderate depression"}
escalation_policies:
  mood:
    priority: high
    resolve_within: 2h
    tiers:
      - {notify: midwives, ack_within: 30m}
      - {notify: obstetrics-on-call, repeat: 15m}
steps:
  - kind: questionnaire
    id: phq9
    instrument: phq-9
    at: day 1 10:00
    expire: 72h
    template:
      en: {subject: "Mood", body: "{{ link }}"}
    on:
      - when: score >= phq_9_threshold
        escalate: {reason: "PHQ-9 10 or more", policy: mood}
"""
FREQUENCY = ["not_at_all", "several_days", "more_than_half_the_days", "nearly_every_day"]
PHQ9_TOTAL_15 = {f"q{n}": FREQUENCY[v] for n, v in enumerate([2, 2, 2, 2, 2, 2, 2, 1, 0], start=1)}
MIDWIVES, OBSTETRICS = "midwives@carepath.localhost", "obstetrics-on-call@carepath.localhost"


class _Webhook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append((self.headers["Idempotency-Key"], body))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@contextmanager
def webhook(status: int) -> Iterator[ThreadingHTTPServer]:
    """A team's webhook on loopback answering every POST with `status`; `.received` keeps (key, body)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    server.status, server.received = status, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def _set_team(stack, team: str, **channels) -> None:
    async with stack.sessions.begin() as session:
        await session.execute(update(TeamRecord).where(TeamRecord.id == team).values(**channels))


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/page"


async def _skip_to(time_skipping, moment):
    await time_skipping.sleep(moment - await time_skipping.get_current_time())


async def _escalate(time_skipping, stack):
    """An escalation of the `mood` policy, with the moment its first tier was due."""
    pathway = parse_pathway(PATHWAY, "faults.yaml", stack.instruments, SITE.teams())
    patient = await stack.add_patient(given_name="Meiling", timezone="UTC")
    enrolled = await stack.enroll(patient, pathway, (await time_skipping.get_current_time()).date() + timedelta(days=1))
    [entry] = (await enrolled.workflow.query(PathwayWorkflow.timeline)).entries
    await _skip_to(time_skipping, entry.due + timedelta(hours=1))
    await submit_response(stack.sessions, stack.client, stack.instruments, enrollment_id=enrolled.enrollment.id,
                          step_id="phq9", occurrence=1, answers=PHQ9_TOTAL_15, source="patient")
    escalation = stack.client.get_workflow_handle_for(EscalationWorkflow.run, escalation_workflow_id(
        await started_escalation(enrolled.workflow)))
    state = await _eventually(escalation, lambda state: state.notified)
    return escalation, state.notified[0].at


async def _eventually(escalation, condition):
    """The workflow's state once `condition` holds: activities run in real time while the clock is still."""
    for _ in range(200):
        state = await escalation.query(EscalationWorkflow.state)
        if condition(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened; state: {state}")


async def _audit(stack, action: str) -> list[EscalationAudit]:
    async with stack.sessions() as session:
        return list(await session.scalars(select(EscalationAudit).where(EscalationAudit.action == action)
                                          .order_by(EscalationAudit.id)))


def _mail_to(stack, address):
    return [mail for mail in stack.inbox.messages if address in mail.recipients]


async def test_a_team_nobody_can_reach_passes_the_escalation_on_at_once(time_skipping, stack):
    with webhook(200) as obstetrics, smtp_down(stack):
        await _set_team(stack, "obstetrics-on-call", email=None, webhook=_url(obstetrics))
        escalation, opened = await _escalate(time_skipping, stack)

        await _skip_to(time_skipping, opened + timedelta(minutes=10))

        state = await _eventually(escalation, lambda state: len(state.notified) == 2)
        assert [(n.team, n.tier) for n in state.notified] == [("midwives", 1), ("obstetrics-on-call", 2)]
        assert state.notified[1].at - opened < timedelta(minutes=5)  # the bounded retries, not ack_within
        [failure] = state.notification_failures
        assert (failure.team, failure.tier, failure.channel, failure.error) == ("midwives", 1, "email", "SmtpUnavailable")
        [(key, page)] = obstetrics.received
        assert key == f"{state.escalation_id}.tier2.obstetrics-on-call.page1" and page["tier"] == 2
    [audited] = await _audit(stack, "notify_failed")
    assert (audited.team, audited.tier, audited.detail) == ("midwives", 1, "email: SmtpUnavailable")


async def test_a_team_without_any_channel_passes_the_escalation_on_at_once(time_skipping, stack):
    await _set_team(stack, "midwives", email=None, webhook=None)
    escalation, opened = await _escalate(time_skipping, stack)

    state = await _eventually(escalation, lambda state: len(state.notified) == 2)

    assert state.notified[1].at - opened < timedelta(seconds=1)
    assert [(f.team, f.channel, f.error) for f in state.notification_failures] == [("midwives", "any", "NoChannel")]
    await _eventually(escalation, lambda _: _mail_to(stack, OBSTETRICS))


async def test_a_team_told_by_one_channel_has_its_whole_ack_within(time_skipping, stack):
    with webhook(200) as midwives, smtp_down(stack):
        await _set_team(stack, "midwives", webhook=_url(midwives))
        escalation, opened = await _escalate(time_skipping, stack)

        await _skip_to(time_skipping, opened + timedelta(minutes=29))
        assert len((await escalation.query(EscalationWorkflow.state)).notified) == 1
        await _skip_to(time_skipping, opened + timedelta(minutes=30, seconds=5))

        state = await _eventually(escalation, lambda state: len(state.notified) == 2)
        assert abs(state.notified[1].at - opened - timedelta(minutes=30)) < timedelta(seconds=1)
        assert len(midwives.received) == 1
        assert [(f.team, f.channel) for f in state.notification_failures] == [("midwives", "email")]


async def test_a_webhook_down_does_not_send_the_email_again(time_skipping, stack):
    with webhook(500) as broken:
        await _set_team(stack, "midwives", webhook=_url(broken))
        escalation, opened = await _escalate(time_skipping, stack)

        await _skip_to(time_skipping, opened + timedelta(minutes=10))

        state = await _eventually(escalation, lambda state: state.notification_failures)
        assert len(state.notified) == 1  # the email got through: the midwives keep their ack_within
        assert [(f.channel, f.error) for f in state.notification_failures] == [("webhook", "WebhookStatus500")]
        assert len(broken.received) == 5 and {key for key, _ in broken.received} == {
            f"{state.escalation_id}.tier1.midwives.page1"}
    [email] = _mail_to(stack, MIDWIVES)
    assert email.message_id == f"<{state.escalation_id}.tier1.midwives.page1@carepath>"
    [audited] = await _audit(stack, "notify_failed")
    assert audited.detail == "webhook: WebhookStatus500" and "127.0.0.1" not in audited.detail


async def test_the_last_tier_is_paged_at_each_repeat_until_someone_acknowledges(time_skipping, stack):
    escalation, opened = await _escalate(time_skipping, stack)
    for minutes in (30, 45, 60):
        await _skip_to(time_skipping, opened + timedelta(minutes=minutes, seconds=5))
        await _eventually(escalation, lambda state: len(state.notified) == 1 + (minutes - 15) // 15)

    await escalation.execute_update(EscalationWorkflow.acknowledge,
                                    StaffAction(staff_id="st_obstetrician", team="obstetrics-on-call"))
    await _skip_to(time_skipping, opened + timedelta(minutes=115))

    state = await escalation.query(EscalationWorkflow.state)
    assert [(n.tier, round((n.at - opened).total_seconds() / 60)) for n in state.notified] == [
        (1, 0), (2, 30), (2, 45), (2, 60)]
    pages = await _eventually(escalation, lambda _: len(_mail_to(stack, OBSTETRICS)) == 3)
    assert sorted(mail.message_id for mail in _mail_to(stack, OBSTETRICS)) == [
        f"<{pages.escalation_id}.tier2.obstetrics-on-call.page{n}@carepath>" for n in (1, 2, 3)]


async def test_an_acknowledged_escalation_not_resolved_in_time_opens_again(time_skipping, stack):
    escalation, opened = await _escalate(time_skipping, stack)
    await _skip_to(time_skipping, opened + timedelta(minutes=10))
    await escalation.execute_update(EscalationWorkflow.acknowledge, StaffAction(staff_id="st_midwife", team="midwives"))

    await _skip_to(time_skipping, opened + timedelta(hours=2, minutes=9))
    assert (await escalation.query(EscalationWorkflow.state)).status == "acknowledged"
    await _skip_to(time_skipping, opened + timedelta(hours=2, minutes=10, seconds=5))

    state = await _eventually(escalation, lambda state: len(state.notified) == 2)
    assert (state.status, state.acknowledged_by) == ("open", None)
    assert [(n.team, n.tier) for n in state.notified] == [("midwives", 1), ("midwives", 1)]
    assert abs(state.notified[1].at - opened - timedelta(hours=2, minutes=10)) < timedelta(seconds=1)
    for _ in range(100):  # recorded by an activity a moment after the state shows the re-notification
        if reopened := await _audit(stack, "reopened"):
            break
        await asyncio.sleep(0.05)
    [reopened] = reopened
    async with stack.sessions() as session:
        record = await session.get(EscalationRecord, state.escalation_id)
    assert (record.status, record.acknowledged_by) == ("open", None)
    assert abs(reopened.at - opened - timedelta(hours=2, minutes=10)) < timedelta(seconds=1)

    await escalation.execute_update(EscalationWorkflow.resolve, StaffAction(staff_id="st_midwife", team="midwives"))
    assert (await escalation.result()).status == "resolved"


async def test_a_webhook_to_a_host_not_allowed_is_never_called_and_the_email_still_goes(time_skipping, stack):
    # A row written before the allowlist existed (or before the host was taken off it).
    await _set_team(stack, "midwives", webhook="http://169.254.169.254/latest/meta-data")
    escalation, _ = await _escalate(time_skipping, stack)

    state = await _eventually(escalation, lambda state: state.notification_failures)

    assert [(f.team, f.channel, f.error) for f in state.notification_failures] == [
        ("midwives", "webhook", "WebhookNotAllowed")]
    await _eventually(escalation, lambda _: _mail_to(stack, MIDWIVES))
    for _ in range(200):  # recorded by an activity, a moment after the workflow's state has it
        audited = await _audit(stack, "notify_failed")
        if audited:
            break
        await asyncio.sleep(0.05)
    assert [line.detail for line in audited] == ["webhook: WebhookNotAllowed"]
