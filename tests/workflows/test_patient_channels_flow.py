"""A pathway on WeChat and SMS, end to end: settings -> worker -> PathwayWorkflow on the time-skipping
server -> delivery -> local WeChat and SMS gateways over real HTTP -> their receipts on the touchpoints."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from language.validation import parse_pathway
from services.receipts import Receipt, apply_receipts
from services.settings import PROJECT_ROOT
from services.site import load_site
from store.db import Patient, TouchpointRecord
from tests.activities.gateway_servers import SignedWebhook, WeChat
from tools.simulation import local_stack

SITE = load_site(PROJECT_ROOT / "pathways")
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
TEMPLATE_ID = "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY"
PATHWAY = f"""
id: channels-flow
version: 1
title: 产后随访
anchor: delivery_date
locales: [zh-CN]
steps:
  - kind: message
    id: welcome
    at: day 0 +1h
    channel: wechat
    template:
      zh-CN:
        subject: 欢迎回家
        body: 欢迎回家
        wechat: {{template_id: {TEMPLATE_ID}, fields: {{first: "{{{{ patient.first_name }}}}，欢迎回家"}}}}
  - kind: message
    id: reminder
    at: day 1 10:00
    channel: sms
    template:
      zh-CN:
        subject: 提醒
        body: 提醒
        sms: {{text: "{{{{ patient.first_name }}}}，明天记得复查。"}}
"""


@pytest.fixture
def gateways(monkeypatch):
    with WeChat("wx-app", "wx-secret", {TEMPLATE_ID}, {OPENID}) as wechat, \
            SignedWebhook("sms-secret", answer_id=lambda payload: "sms-" + payload["message_id"]) as sms:
        # The worker reads these like any deployment's settings (services/settings.py).
        for name, value in {"WECHAT_APP_ID": "wx-app", "WECHAT_APP_SECRET": "wx-secret", "WECHAT_TOKEN": "t",
                            "WECHAT_API_BASE": wechat.url, "SMS_PROVIDER": "webhook",
                            "SMS_WEBHOOK_URL": sms.url + "/sms", "SMS_WEBHOOK_SECRET": "sms-secret"}.items():
            monkeypatch.setenv(f"CAREPATH_{name}", value)
        yield wechat, sms


async def test_a_pathway_reaches_the_patient_by_wechat_and_sms(time_skipping, tmp_path, gateways):
    wechat, sms = gateways
    pathway = parse_pathway(PATHWAY, "channels-flow.yaml", SITE.instruments, SITE.teams())
    async with local_stack(time_skipping.client, tmp_path, site=SITE) as stack:
        patient = await stack.add_patient(given_name="芳", locale="zh-CN", timezone="Asia/Shanghai",
                                          phone="+86 139 0000 0000", email=None)
        async with stack.sessions.begin() as session:
            await session.execute(update(Patient).where(Patient.id == patient.id).values(wechat_openid=OPENID))
        anchor = await time_skipping.get_current_time() + timedelta(minutes=5)
        enrolled = await stack.enroll(patient, pathway, anchor)
        timeline = await enrolled.workflow.result()

        assert [entry.status for entry in timeline.entries] == ["sent", "sent"]
        [template_message] = wechat.requests
        assert template_message["touser"] == OPENID and template_message["data"] == {"first": {"value": "芳，欢迎回家"}}
        [text] = sms.requests
        assert (text["to"], text["text"]) == ("+8613900000000", "芳，明天记得复查。")

        async with stack.sessions() as session:
            records = {record.channel: record for record in await session.scalars(select(TouchpointRecord))}
        assert records["wechat"].provider_message_id == "200228332"
        assert records["sms"].provider_message_id == "sms-" + text["message_id"]

        async with stack.sessions() as session:
            unknown = await apply_receipts(session, "wechat", [Receipt("200228332", "delivered")], "127.0.0.1", "wechat")
        assert unknown == []
        async with stack.sessions() as session:
            delivered = await session.scalar(select(TouchpointRecord).where(TouchpointRecord.channel == "wechat"))
        assert delivered.delivery_status == "delivered"
