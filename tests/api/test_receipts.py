"""Delivery receipts: each gateway's, verified its own way, marks the touchpoint delivered or undelivered;
a receipt that does not verify is refused with 403, audited, and changes nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from store.db import AccessAudit, Enrollment, TouchpointRecord, utcnow
from tests.api.conftest import RECEIPT_SECRETS


@pytest.fixture
async def touchpoint(app: FastAPI, patient: dict):
    """A message one of the gateways took: its id is `provider_id`, on `channel`."""
    sessions = app.state.services.sessions

    async def sent(channel: str) -> tuple[int, str]:
        provider_id = uuid.uuid4().hex
        async with sessions.begin() as session:
            enrollment = Enrollment(patient_id=patient["id"], pathway_id="api-follow-up", pathway_version=1,
                                    anchor=utcnow(), timezone="Asia/Shanghai", request_fingerprint=uuid.uuid4().hex)
            session.add(enrollment)
            await session.flush()
            record = TouchpointRecord(enrollment_id=enrollment.id, step_id="check-in", occurrence=1, channel=channel,
                                      status="sent", due_at=utcnow(), sent_at=utcnow(), attempts=1,
                                      message_id="<x@carepath>", provider_message_id=provider_id)
            session.add(record)
            await session.flush()
            return record.id, provider_id

    return sent


async def stored(app: FastAPI, record_id: int) -> TouchpointRecord:
    async with app.state.services.sessions() as session:
        return await session.get(TouchpointRecord, record_id)


def signed(secret: str, payload: dict, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """Signed as the hospital's gateway signs, from the documented scheme (not our code)."""
    body = json.dumps(payload).encode()
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"X-Carepath-Timestamp": stamp, "X-Carepath-Signature": f"sha256={digest}",
                  "Content-Type": "application/json"}


@pytest.mark.parametrize(("path", "channel", "secret"), [
    ("/receipts/sms/webhook", "sms", RECEIPT_SECRETS["SMS_WEBHOOK_SECRET"]),
    ("/receipts/push", "push", RECEIPT_SECRETS["PUSH_WEBHOOK_SECRET"]),
])
async def test_a_signed_webhook_receipt_updates_the_touchpoint(app, anonymous: httpx.AsyncClient, touchpoint,
                                                               path: str, channel: str, secret: str):
    record_id, provider_id = await touchpoint(channel)
    body, headers = signed(secret, {"id": provider_id, "status": "undelivered", "reason": "handset off for 72 h"})
    response = await anonymous.post(path, content=body, headers=headers)
    assert response.status_code == 200, response.text
    record = await stored(app, record_id)
    assert (record.status, record.delivery_status, record.delivery_reason) == ("sent", "undelivered",
                                                                               "handset off for 72 h")
    assert record.delivery_reported_at is not None


@pytest.mark.parametrize("forgery", ["wrong secret", "stale", "altered body", "unsigned"])
async def test_a_forged_webhook_receipt_is_refused(app, anonymous: httpx.AsyncClient, touchpoint, forgery: str):
    record_id, provider_id = await touchpoint("sms")
    secret = "guessed" if forgery == "wrong secret" else RECEIPT_SECRETS["SMS_WEBHOOK_SECRET"]
    body, headers = signed(secret, {"id": provider_id, "status": "delivered"},
                           timestamp=int(time.time()) - 3600 if forgery == "stale" else None)
    if forgery == "altered body":
        body = body.replace(b"delivered", b"undelivered")
    if forgery == "unsigned":
        headers = {"Content-Type": "application/json"}
    response = await anonymous.post("/receipts/sms/webhook", content=body, headers=headers)
    assert response.status_code == 403
    assert (await stored(app, record_id)).delivery_status is None
    async with app.state.services.sessions() as session:
        refusal = await session.scalar(select(AccessAudit).order_by(AccessAudit.id.desc()).limit(1))
    assert (refusal.action, refusal.outcome, refusal.actor_kind) == ("touchpoint.receipt", "denied", "gateway")


async def test_a_receipt_for_a_message_not_yet_recorded_asks_for_it_again(anonymous: httpx.AsyncClient):
    body, headers = signed(RECEIPT_SECRETS["SMS_WEBHOOK_SECRET"], {"id": "unknown-id", "status": "delivered"})
    response = await anonymous.post("/receipts/sms/webhook", content=body, headers=headers)
    assert response.status_code == 404


async def test_a_signed_receipt_of_the_wrong_shape_names_the_problem(app, anonymous: httpx.AsyncClient, touchpoint):
    record_id, provider_id = await touchpoint("sms")
    body, headers = signed(RECEIPT_SECRETS["SMS_WEBHOOK_SECRET"], {"id": provider_id, "status": "read"})
    response = await anonymous.post("/receipts/sms/webhook", content=body, headers=headers)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["status"]]
    assert (await stored(app, record_id)).delivery_status is None


def wechat_query(token: str, timestamp: int | None = None) -> dict[str, str]:
    """WeChat's signature: SHA-1 of token, timestamp and nonce, sorted and joined."""
    stamp, nonce = str(timestamp if timestamp is not None else int(time.time())), "1514711492"
    return {"signature": hashlib.sha1("".join(sorted([token, stamp, nonce])).encode()).hexdigest(),
            "timestamp": stamp, "nonce": nonce}


def template_job_finished(msg_id: str, status: str) -> str:
    return (f"<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName>"
            f"<FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]></FromUserName>"
            f"<CreateTime>1395658920</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>{msg_id}</MsgID>"
            f"<Status><![CDATA[{status}]]></Status></xml>")


async def test_wechat_reports_a_template_message(app, anonymous: httpx.AsyncClient, touchpoint):
    delivered_id, delivered_msg = await touchpoint("wechat")
    blocked_id, blocked_msg = await touchpoint("wechat")
    token = RECEIPT_SECRETS["WECHAT_TOKEN"]
    for msg_id, outcome in ((delivered_msg, "success"), (blocked_msg, "failed:user block")):
        response = await anonymous.post("/receipts/wechat", params=wechat_query(token),
                                        content=template_job_finished(msg_id, outcome))
        assert (response.status_code, response.text) == (200, "success")
    delivered, blocked = await stored(app, delivered_id), await stored(app, blocked_id)
    assert (delivered.delivery_status, delivered.delivery_reason) == ("delivered", None)
    assert (blocked.delivery_status, blocked.delivery_reason) == ("undelivered", "user block")


def subscription_notifications_sent(*outcomes: tuple[str, str, str]) -> str:
    """WeChat's subscribe_msg_sent_event: one List per notification (MsgID, ErrorCode, ErrorStatus)."""
    items = "".join(f"<List><TemplateId><![CDATA[bDmywsp2oEHjwAadTGKkUHpC0RgBVPvfAKyDIZ5gXhE]]></TemplateId>"
                    f"<MsgID>{msg_id}</MsgID><ErrorCode>{code}</ErrorCode>"
                    f"<ErrorStatus><![CDATA[{status}]]></ErrorStatus></List>" for msg_id, code, status in outcomes)
    return (f"<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName>"
            f"<FromUserName><![CDATA[otFpruAK8D-E6EfStSYonYSBZ8_4]]></FromUserName><CreateTime>1610969468</CreateTime>"
            f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe_msg_sent_event]]></Event>"
            f"<SubscribeMsgSentEvent>{items}</SubscribeMsgSentEvent></xml>")


async def test_wechat_reports_subscription_notifications(app, anonymous: httpx.AsyncClient, touchpoint):
    delivered_id, delivered_msg = await touchpoint("wechat")
    refused_id, refused_msg = await touchpoint("wechat")
    response = await anonymous.post("/receipts/wechat", params=wechat_query(RECEIPT_SECRETS["WECHAT_TOKEN"]),
                                    content=subscription_notifications_sent((delivered_msg, "0", "success"),
                                                                             (refused_msg, "20004", "user reject")))
    assert (response.status_code, response.text) == (200, "success")
    delivered, refused = await stored(app, delivered_id), await stored(app, refused_id)
    assert (delivered.delivery_status, delivered.delivery_reason) == ("delivered", None)
    assert (refused.delivery_status, refused.delivery_reason) == ("undelivered", "user reject")


async def test_wechat_server_check_and_forged_events(app, anonymous: httpx.AsyncClient, touchpoint):
    token = RECEIPT_SECRETS["WECHAT_TOKEN"]
    check = await anonymous.get("/receipts/wechat", params={**wechat_query(token), "echostr": "5837397520665436492"})
    assert (check.status_code, check.text) == (200, "5837397520665436492")
    record_id, msg_id = await touchpoint("wechat")
    for query in (wechat_query("not-the-token"), wechat_query(token, timestamp=int(time.time()) - 3600), {}):
        forged = await anonymous.post("/receipts/wechat", params=query, content=template_job_finished(msg_id, "success"))
        assert forged.status_code == 403
    assert (await anonymous.get("/receipts/wechat", params={**wechat_query("x"), "echostr": "1"})).status_code == 403
    assert (await stored(app, record_id)).delivery_status is None


async def test_alibaba_status_reports(app, anonymous: httpx.AsyncClient, touchpoint):
    delivered_id, delivered_biz = await touchpoint("sms")
    failed_id, failed_biz = await touchpoint("sms")
    reports = [
        {"phone_number": "13800138000", "send_time": "2026-11-28 10:00:00", "report_time": "2026-11-28 10:00:08",
         "success": True, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1", "biz_id": delivered_biz,
         "out_id": "x"},
        {"phone_number": "13800138001", "send_time": "2026-11-28 10:00:00", "report_time": "2026-11-28 10:00:09",
         "success": False, "err_code": "MK:0001", "err_msg": "空号", "sms_size": "1", "biz_id": failed_biz,
         "out_id": "y"},
    ]
    forged = await anonymous.post("/receipts/sms/alibaba", params={"token": "guess"}, json=reports)
    assert forged.status_code == 403
    assert (await stored(app, delivered_id)).delivery_status is None
    response = await anonymous.post("/receipts/sms/alibaba", params={"token": RECEIPT_SECRETS["ALIBABA_SMS_REPORT_TOKEN"]},
                                    json=reports)
    assert response.json() == {"code": 0, "msg": "成功"}
    delivered, failed = await stored(app, delivered_id), await stored(app, failed_id)
    assert delivered.delivery_status == "delivered"
    assert (failed.delivery_status, failed.delivery_reason) == ("undelivered", "MK:0001 空号")


async def test_tencent_status_callbacks(app, anonymous: httpx.AsyncClient, touchpoint):
    delivered_id, delivered_serial = await touchpoint("sms")
    failed_id, failed_serial = await touchpoint("sms")
    reports = [
        {"user_receive_time": "2026-11-28 10:00:08", "nationcode": "86", "mobile": "13800138000",
         "report_status": "SUCCESS", "errmsg": "DELIVRD", "description": "用户短信送达成功", "sid": delivered_serial},
        {"user_receive_time": "2026-11-28 10:00:09", "nationcode": "86", "mobile": "13800138001",
         "report_status": "FAIL", "errmsg": "MK:0001", "description": "空号", "sid": failed_serial},
    ]
    forged = await anonymous.post("/receipts/sms/tencent", params={"token": "guess"}, json=reports)
    assert forged.status_code == 403
    assert (await stored(app, delivered_id)).delivery_status is None
    token = {"token": RECEIPT_SECRETS["TENCENT_SMS_REPORT_TOKEN"]}
    response = await anonymous.post("/receipts/sms/tencent", params=token, json=reports)
    assert response.json() == {"result": 0, "errmsg": "OK"}
    delivered, failed = await stored(app, delivered_id), await stored(app, failed_id)
    assert delivered.delivery_status == "delivered"
    assert (failed.delivery_status, failed.delivery_reason) == ("undelivered", "MK:0001 空号")
    unknown = await anonymous.post("/receipts/sms/tencent", params=token, json=[reports[0] | {"sid": "5000:unknown"}])
    assert unknown.json()["result"] == 1, "Tencent sends a report naming no message of ours again"
    malformed = await anonymous.post("/receipts/sms/tencent", params=token, json=[{"sid": delivered_serial}])
    assert malformed.json()["result"] == 1 and "report_status" in malformed.json()["errmsg"]


async def test_the_enrollment_shows_each_messages_channel_and_what_its_receipt_said(
        app, api: httpx.AsyncClient, anonymous: httpx.AsyncClient, patient: dict):
    enrolled = await api.post("/enrollments", headers={"Idempotency-Key": str(uuid.uuid4())}, json={
        "patient_id": patient["id"], "pathway_id": "api-follow-up",
        "anchor": (utcnow() + timedelta(days=30)).date().isoformat()})
    assert enrolled.status_code == 201, enrolled.text
    enrollment_id = enrolled.json()["id"]
    # What delivery records as each gateway answers (activities/delivery.py): WeChat refused the first
    # day's message for good, then SMS took it; the SMS gateway took the second day's.
    due = utcnow()
    async with app.state.services.sessions.begin() as session:
        session.add_all([
            TouchpointRecord(enrollment_id=enrollment_id, step_id="check-in", occurrence=1, purpose="scheduled",
                             channel="wechat", status="failed", due_at=due, attempts=1,
                             last_error="WeChat refused the message: 43004 require subscribe"),
            TouchpointRecord(enrollment_id=enrollment_id, step_id="check-in", occurrence=2, purpose="scheduled",
                             channel="sms", status="sent", due_at=due + timedelta(days=1), sent_at=due, attempts=1,
                             provider_message_id="sms-undelivered"),
            TouchpointRecord(enrollment_id=enrollment_id, step_id="check-in", occurrence=3, purpose="scheduled",
                             channel="sms", status="sent", due_at=due + timedelta(days=2), sent_at=due, attempts=1,
                             provider_message_id="sms-delivered")])
    for provider_id, outcome in (("sms-undelivered", {"status": "undelivered", "reason": "number not in service"}),
                                 ("sms-delivered", {"status": "delivered"})):
        body, headers = signed(RECEIPT_SECRETS["SMS_WEBHOOK_SECRET"], {"id": provider_id} | outcome)
        assert (await anonymous.post("/receipts/sms/webhook", content=body, headers=headers)).status_code == 200

    read = await api.get(f"/enrollments/{enrollment_id}")
    assert read.status_code == 200, read.text
    shown = [{key: delivery[key] for key in ("occurrence", "channel", "status", "last_error", "delivery_status",
                                             "delivery_reason")} for delivery in read.json()["deliveries"]]
    assert shown == [
        {"occurrence": 1, "channel": "wechat", "status": "failed",
         "last_error": "WeChat refused the message: 43004 require subscribe", "delivery_status": None,
         "delivery_reason": None},
        {"occurrence": 2, "channel": "sms", "status": "sent", "last_error": None, "delivery_status": "undelivered",
         "delivery_reason": "number not in service"},
        {"occurrence": 3, "channel": "sms", "status": "sent", "last_error": None, "delivery_status": "delivered",
         "delivery_reason": None}]
    assert all(delivery["delivery_reported_at"] for delivery in read.json()["deliveries"][1:])
