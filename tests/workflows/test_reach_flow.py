"""Reaching a patient, end to end: settings -> worker -> PathwayWorkflow on the time-skipping server ->
delivery by the patient's channels in order, through the local WeChat and SMS gateways over real HTTP;
quiet hours and the daily budget holding messages on durable timers."""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site
from store.db import CallTaskRecord, Patient, PatientPreferences, TouchpointRecord
from tests.activities.gateway_servers import SignedWebhook, WeChat
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")
FOLLOWER, STRANGER = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "oUpF8uNotFollowingTheAccount0"
TEMPLATE_ID = "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY"
SHANGHAI = "Asia/Shanghai"
WECHAT_THEN_SMS = f"""
id: reach-flow
version: 1
title: 产后随访
anchor: delivery_date
locales: [zh-CN]
reach:
  channels: {{zh-CN: [wechat, sms]}}
  call: unreached-call
steps:
  - kind: message
    id: welcome
    at: day 0 +1h
    template:
      zh-CN:
        subject: 欢迎回家
        body: 欢迎回家
        wechat: {{template_id: {TEMPLATE_ID}, fields: {{first: "{{{{ patient.first_name }}}}，欢迎回家"}}}}
        sms: {{text: "{{{{ patient.first_name }}}}，欢迎回家。"}}
  - kind: call
    id: unreached-call
    team: midwives
    script: {{zh-CN: 消息未能送达：请致电问候产妇，并告知随访安排。}}
"""


def _messages_at(pathway_id: str, *times: str) -> str:
    steps = "".join(f"""
  - kind: message
    id: note-{number}
    at: {at}
    template: {{en: {{subject: "{pathway_id} {number}", body: "Hello {{{{ patient.first_name }}}}"}}}}""" for number, at
                    in enumerate(times, start=1))
    return f"id: {pathway_id}\nversion: 1\ntitle: {pathway_id}\nanchor: surgery_date\nlocales: [en]\nsteps:{steps}\n"


@pytest.fixture
def gateways(monkeypatch):
    with WeChat("wx-app", "wx-secret", {TEMPLATE_ID}, {FOLLOWER}) as wechat, \
            SignedWebhook("sms-secret", answer_id=lambda payload: "sms-" + payload["message_id"]) as sms:
        for name, value in {"WECHAT_APP_ID": "wx-app", "WECHAT_APP_SECRET": "wx-secret", "WECHAT_TOKEN": "t",
                            "WECHAT_API_BASE": wechat.url, "SMS_PROVIDER": "webhook",
                            "SMS_WEBHOOK_URL": sms.url + "/sms", "SMS_WEBHOOK_SECRET": "sms-secret"}.items():
            monkeypatch.setenv(f"CAREPATH_{name}", value)
        yield wechat, sms


async def _patient(stack, *, openid: str | None, phone: str | None, **preferences) -> Patient:
    patient = await stack.add_patient(given_name="芳", locale="zh-CN", timezone=SHANGHAI, phone=phone, email=None)
    async with stack.sessions.begin() as session:
        (await session.get(Patient, patient.id)).wechat_openid = openid
        if preferences:
            session.add(PatientPreferences(patient_id=patient.id, **preferences))
    return patient


async def test_a_message_wechat_refuses_goes_by_sms_and_its_row_says_so(gateways, time_skipping, stack):
    wechat, sms = gateways
    pathway = parse_pathway(WECHAT_THEN_SMS, "reach-flow.yaml", SITE.instruments, SITE.teams())
    patient = await _patient(stack, openid=STRANGER, phone="+86 139 0000 0000")
    enrolled = await stack.enroll(patient, pathway, await time_skipping.get_current_time())

    # The call step has no `at`: with the message sent, nothing is left and the run completes.
    timeline = await enrolled.workflow.result()

    [welcome] = [entry for entry in timeline.entries if entry.step_id == "welcome"]
    assert (welcome.status, welcome.channel) == ("sent", "sms")
    assert welcome.detail == "sent by sms; not by wechat: WeChat refused the message (code 43004)"
    assert [request["touser"] for request in wechat.requests] == [STRANGER]
    assert [request["text"] for request in sms.requests] == ["芳，欢迎回家。"]
    async with stack.sessions() as session:
        [record] = await session.scalars(select(TouchpointRecord))
    assert (record.channel, record.status, record.provider_message_id) == (
        "sms", "sent", "sms-" + sms.requests[0]["message_id"])


async def test_a_patient_no_channel_reaches_gets_a_call_from_staff(gateways, time_skipping, stack):
    wechat, sms = gateways
    pathway = parse_pathway(WECHAT_THEN_SMS, "reach-flow.yaml", SITE.instruments, SITE.teams())
    patient = await _patient(stack, openid=None, phone=None)
    enrolled = await stack.enroll(patient, pathway, await time_skipping.get_current_time())

    await time_skipping.sleep(timedelta(hours=2))
    call = await _open_call(enrolled)

    assert call.detail == "opened by welcome#1, message not delivered"
    [welcome] = [entry for entry in (await enrolled.workflow.query(PathwayWorkflow.timeline)).entries
                 if entry.step_id == "welcome"]
    assert welcome.status == "failed"
    assert "wechat: the patient has no WeChat openid; sms: the patient has no phone number" in welcome.detail
    async with stack.sessions() as session:
        [task] = await session.scalars(select(CallTaskRecord))
    assert (task.step_id, task.team, task.status) == ("unreached-call", "midwives", "open")
    assert task.script == "消息未能送达：请致电问候产妇，并告知随访安排。"
    assert wechat.requests == [] and sms.requests == []


async def test_three_pathways_send_five_messages_a_day_and_the_sixth_the_next_day(time_skipping, stack):
    patient = await stack.add_patient(timezone="UTC")
    tomorrow = (await time_skipping.get_current_time()).date() + timedelta(days=1)
    # Day 1 between 10:00 and 10:14 local: six messages, two from each pathway, the last due at 10:14.
    pathways = [parse_pathway(_messages_at(f"pathway-{n}", f"day 1 10:{n * 2:02d}", f"day 1 10:{n * 2 + 10:02d}"),
                              f"pathway-{n}.yaml", SITE.instruments, SITE.teams()) for n in range(3)]
    runs = [await stack.enroll(patient, pathway, tomorrow) for pathway in pathways]

    # One at a time: the time-skipping server stops skipping when any one of concurrent waits ends.
    timelines = [await run.workflow.result() for run in runs]

    day_1 = datetime.combine(tomorrow + timedelta(days=1), time(0), tzinfo=ZoneInfo("UTC"))
    entries = sorted((entry for timeline in timelines for entry in timeline.entries), key=lambda entry: entry.due)
    assert [entry.status for entry in entries] == ["sent"] * 6
    assert all(entry.at < day_1 + timedelta(days=1) for entry in entries[:5])
    sixth = entries[5]
    assert sixth.at >= day_1 + timedelta(days=1) and sixth.at < day_1 + timedelta(days=1, minutes=5)
    assert sixth.detail == (f"deferred until {tomorrow + timedelta(days=2):%Y-%m-%d} 00:00 UTC "
                            "(the patient's daily budget of 5 messages is spent)")
    assert len(stack.inbox.messages) == 6


async def test_a_message_due_in_quiet_hours_waits_until_they_end(time_skipping, stack):
    patient = await stack.add_patient(timezone=SHANGHAI)
    async with stack.sessions.begin() as session:
        session.add(PatientPreferences(patient_id=patient.id, channels=[], quiet_hours="22:00-07:30"))
    pathway = parse_pathway(_messages_at("late-note", "day 1 23:00"), "late-note.yaml", SITE.instruments,
                            SITE.teams())
    anchor = (await time_skipping.get_current_time()).date() + timedelta(days=1)

    timeline = await (await stack.enroll(patient, pathway, anchor, timezone=SHANGHAI)).workflow.result()

    [note] = timeline.entries
    sent_at = note.at.astimezone(ZoneInfo(SHANGHAI))
    assert note.status == "sent"
    assert (sent_at.date(), sent_at.time().replace(second=0, microsecond=0)) == (anchor + timedelta(days=2), time(7, 30))
    assert "the patient's quiet hours 22:00-07:30" in note.detail


async def _open_call(enrolled):
    """The reach call once the workflow has opened it (the failed delivery runs in real time)."""
    for _ in range(100):
        timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
        calls = [entry for entry in timeline.entries if entry.kind == "call" and entry.status == "open"]
        if calls:
            return calls[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no call opened: {timeline.entries}")


async def test_a_questionnaire_invitation_is_counted_but_never_held_by_the_budget(time_skipping, stack):
    patient = await stack.add_patient(timezone="UTC")
    async with stack.sessions.begin() as session:
        session.add(PatientPreferences(patient_id=patient.id, channels=[], daily_budget=1))
    pathway = parse_pathway(_messages_at("budget-one", "day 1 10:00", "day 1 10:10") + """
  - kind: questionnaire
    id: mood
    instrument: phq-9
    at: day 1 10:05
    expire: 2h
    template: {en: {subject: "How are you?", body: "Please answer: {{ link }}"}}
""", "budget-one.yaml", SITE.instruments, SITE.teams())
    anchor = (await time_skipping.get_current_time()).date() + timedelta(days=1)

    timeline = await (await stack.enroll(patient, pathway, anchor)).workflow.result()

    sent = {entry.step_id: entry for entry in timeline.entries}
    day_1 = anchor + timedelta(days=1)
    assert sent["note-1"].at.date() == day_1 and sent["note-1"].detail is None
    assert [mail.subject for mail in stack.inbox.messages][:2] == ["budget-one 1", "How are you?"]
    assert sent["mood"].status == "expired" and sent["mood"].detail is None  # its invitation was never held
    assert sent["note-2"].at.date() == day_1 + timedelta(days=1)
    assert "daily budget of 1 messages is spent" in sent["note-2"].detail
