"""A patient opts out, end to end: a pathway texts and emails them (worker, PathwayWorkflow on the
time-skipping server, a local SMS gateway over real HTTP, a real SMTP inbox); they reply STOP, which the
gateway posts, signed, to the API served over real HTTP, and follow the unsubscribe link in the email
(the page first, then the confirmation). The pathway's next text and next email do not go."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from api.main import create_app
from language.validation import parse_pathway
from services.consent import Recorder, record_decision
from services.settings import PROJECT_ROOT, Settings
from services.site import load_site
from store.db import AccessAudit, ConsentRecord, TouchpointRecord
from tests.activities.gateway_servers import SignedWebhook
from tools.simulation import local_stack
from tools.smtp_sink import free_port

SITE = load_site(PROJECT_ROOT / "pathways")
SMS_SECRET = "sms-gateway-secret"
PATHWAY = """
id: opt-out-flow
version: 1
title: 产后随访
anchor: delivery_date
locales: [zh-CN]
steps:
  - kind: message
    id: first-text
    at: day 0 +1h
    channel: sms
    template:
      zh-CN: {subject: 提醒, body: 提醒, sms: {text: "{{ patient.first_name }}，今天记得量血压。"}}
  - kind: message
    id: first-email
    at: day 0 +2h
    template:
      zh-CN: {subject: 欢迎回家, body: "{{ patient.first_name }}，欢迎回家。"}
  - kind: message
    id: second-text
    at: day 1 10:00
    channel: sms
    template:
      zh-CN: {subject: 提醒, body: 提醒, sms: {text: "{{ patient.first_name }}，明天记得复查。"}}
  - kind: message
    id: second-email
    at: day 1 11:00
    template:
      zh-CN: {subject: 复查提醒, body: "{{ patient.first_name }}，明天记得复查。"}
"""


@pytest.fixture
def sms_gateway(monkeypatch) -> SignedWebhook:
    with SignedWebhook(SMS_SECRET, answer_id=lambda payload: "sms-" + payload["message_id"]) as gateway:
        for name, value in {"SMS_PROVIDER": "webhook", "SMS_WEBHOOK_URL": gateway.url + "/sms",
                            "SMS_WEBHOOK_SECRET": SMS_SECRET}.items():
            monkeypatch.setenv(f"CAREPATH_{name}", value)
        yield gateway


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """The API under uvicorn on a loopback port of its own, in this process."""
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=free_port(),
                                           log_level="warning"))
    running = asyncio.create_task(server.serve())
    while not server.started:
        assert not running.done(), "the API stopped while starting"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await running


def signed_reply(sender: str, text: str) -> tuple[bytes, dict[str, str]]:
    """As the hospital's gateway signs what it posts (the documented scheme, not our code)."""
    body = json.dumps({"sender": sender, "text": text}).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(SMS_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"X-Carepath-Timestamp": stamp, "X-Carepath-Signature": f"sha256={digest}",
                  "Content-Type": "application/json"}


async def until(check, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return result


async def test_after_stop_and_unsubscribe_the_pathway_sends_no_more_texts_or_emails(
        time_skipping, tmp_path, database_url, sms_gateway):
    pathway = parse_pathway(PATHWAY, "opt-out-flow.yaml", SITE.instruments, SITE.teams())
    async with local_stack(time_skipping.client, tmp_path, site=SITE, database_url=database_url) as stack:
        settings = stack.settings.model_copy(update={
            "TEMPORAL_ADDRESS": time_skipping.client.service_client.config.target_host})
        async with serving(settings) as api_url, httpx.AsyncClient(base_url=api_url, trust_env=False) as http:
            patient = await stack.add_patient(given_name="芳", locale="zh-CN", timezone="Asia/Shanghai",
                                              phone="+86 139 0000 0000", email="fang@example.test")
            anchor = await time_skipping.get_current_time() + timedelta(minutes=5)
            enrolled = await stack.enroll(patient, pathway, anchor)

            await time_skipping.sleep(timedelta(hours=3))
            await until(lambda: sms_gateway.requests and stack.inbox.messages, "the first text and email")
            [first_text] = sms_gateway.requests
            assert first_text["text"] == "芳，今天记得量血压。"
            [first_email] = stack.inbox.messages

            # The patient replies STOP; the network gives their number without the country code.
            body, headers = signed_reply("13900000000", "STOP")
            stopped = await http.post("/inbound/sms/webhook", content=body, headers=headers)
            assert (stopped.status_code, stopped.json()) == (200, {"stopped": 1})

            # The email's link, on this API: a GET shows the page and changes nothing; the button stops email.
            link = str(first_email.message["List-Unsubscribe"]).strip("<>")
            path = "/u/" + link.rsplit("/u/", 1)[1]
            assert link in first_email.body
            page = await http.get(path)
            assert page.status_code == 200 and "退订邮件" in page.text
            async with stack.sessions() as session:
                assert [row.channel for row in await session.scalars(select(ConsentRecord))] == ["sms"]
            confirmed = await http.post(path)
            assert confirmed.status_code == 200

            timeline = await enrolled.workflow.result()

        assert len(sms_gateway.requests) == 1
        assert [mail for mail in stack.inbox.messages if "fang@example.test" in mail.recipients] == [first_email]
        assert [(entry.step_id, entry.status) for entry in timeline.entries] == [
            ("first-text", "sent"), ("first-email", "sent"), ("second-text", "failed"), ("second-email", "failed")]
        async with stack.sessions() as session:
            refused = {record.step_id: record.last_error for record in await session.scalars(
                select(TouchpointRecord).where(TouchpointRecord.status == "failed"))}
            audits = [(row.actor_kind, row.action, row.target, row.reason) for row in await session.scalars(
                select(AccessAudit).where(AccessAudit.patient_id == patient.id).order_by(AccessAudit.id))]
        assert refused == {"second-text": "no consent for sms", "second-email": "no consent for email"}
        assert audits == [("patient", "consent.withdraw", "sms", "replied STOP (sms-webhook)"),
                          ("patient", "consent.withdraw", "email", "unsubscribe link")]


async def test_where_the_site_requires_consent_only_consented_channels_carry_the_pathway(
        time_skipping, tmp_path, database_url, sms_gateway, monkeypatch):
    monkeypatch.setenv("CAREPATH_REQUIRE_CONSENT", "true")
    pathway = parse_pathway(PATHWAY, "opt-out-flow.yaml", SITE.instruments, SITE.teams())
    async with local_stack(time_skipping.client, tmp_path, site=SITE, database_url=database_url) as stack:
        patient = await stack.add_patient(given_name="芳", locale="zh-CN", timezone="Asia/Shanghai",
                                          phone="+86 139 0000 0000", email="fang@example.test")
        async with stack.sessions.begin() as session:
            record_decision(session, patient.id, "email", "granted", "written", Recorder("staff", "st_midwife"))
        enrolled = await stack.enroll(patient, pathway, await time_skipping.get_current_time() + timedelta(minutes=5))
        timeline = await enrolled.workflow.result()

    assert sms_gateway.requests == []
    assert [mail.subject for mail in stack.inbox.messages if "fang@example.test" in mail.recipients] == [
        "欢迎回家", "复查提醒"]
    assert [(entry.step_id, entry.status) for entry in timeline.entries] == [
        ("first-text", "failed"), ("first-email", "sent"), ("second-text", "failed"), ("second-email", "sent")]
    assert {entry.detail for entry in timeline.entries if entry.status == "failed"} == {
        "scheduled: no consent for sms"}
