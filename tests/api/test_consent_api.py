"""Consent and opt-out through the API: staff and hospital systems record consent per channel; the
patient stops email with the link in every email and SMS with a STOP reply; withdrawing every channel
ends all of the patient's enrollments. Every decision kept and audited (see conftest: real app, Temporal
dev server, worker, database of each kind)."""

from __future__ import annotations

import random
import time
import uuid
from datetime import date, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from services.links import unsubscribe_links
from services.principals import Role
from store.db import AccessAudit, ConsentRecord
from tests.api.conftest import RECEIPT_SECRETS
from tests.api.test_receipts import signed

ANCHOR = date.today() + timedelta(days=30)
EVERY_CHANNEL = ["email", "console", "sms", "wechat", "push"]


@pytest.fixture
async def reachable(api: httpx.AsyncClient) -> dict:
    """A patient with a phone of their own, written the way a clerk types it."""
    number = f"139{random.randrange(10**8):08d}"
    response = await api.post("/patients", json={
        "given_name": "芳", "family_name": "王", "email": f"{uuid.uuid4().hex}@example.test",
        "phone": f"+86 {number[:3]} {number[3:7]} {number[7:]}", "locale": "zh-CN", "timezone": "Asia/Shanghai"})
    assert response.status_code == 201, response.text
    return response.json() | {"national_number": number}


async def audit_of(app: FastAPI, patient_id: str) -> list[AccessAudit]:
    async with app.state.services.sessions() as session:
        return list(await session.scalars(select(AccessAudit).where(AccessAudit.patient_id == patient_id)
                                          .order_by(AccessAudit.id)))


async def decisions_of(app: FastAPI, patient_id: str) -> list[tuple[str, str, str]]:
    async with app.state.services.sessions() as session:
        rows = await session.scalars(select(ConsentRecord).where(ConsentRecord.patient_id == patient_id)
                                     .order_by(ConsentRecord.id))
        return [(row.channel, row.decision, row.method) for row in rows]


async def test_staff_record_consent_per_channel_and_read_it_back_audited(app, api: httpx.AsyncClient, reachable):
    patient_id = reachable["id"]
    before = await api.get(f"/patients/{patient_id}/consent")
    assert before.status_code == 200, before.text
    assert (before.json()["open_channels"], before.json()["history"]) == (EVERY_CHANNEL, [])

    granted = await api.post(f"/patients/{patient_id}/consent",
                             json={"channel": "sms", "decision": "granted", "method": "written"})
    assert granted.status_code == 201, granted.text
    withdrawn = await api.post(f"/patients/{patient_id}/consent",
                               json={"channel": "wechat", "decision": "withdrawn", "method": "verbal"})
    assert withdrawn.status_code == 201, withdrawn.text
    state = withdrawn.json()
    assert state["open_channels"] == ["email", "console", "sms", "push"]
    assert [(line["channel"], line["decision"], line["method"], line["recorded_by_kind"])
            for line in state["history"]] == [("wechat", "withdrawn", "verbal", "staff"),
                                              ("sms", "granted", "written", "staff")]
    assert [(row.action, row.target) for row in await audit_of(app, patient_id)][-3:] == [
        ("patient.consent.read", None), ("consent.grant", "sms"), ("consent.withdraw", "wechat")]


@pytest.mark.parametrize("body", [
    {"channel": "fax", "decision": "granted", "method": "written"},
    {"channel": "sms", "decision": "maybe", "method": "written"},
    {"channel": "sms", "decision": "granted", "method": "sms-reply"},  # the patient's own way, not staff's
])
async def test_a_malformed_decision_is_refused_and_records_nothing(app, api: httpx.AsyncClient, reachable, body):
    response = await api.post(f"/patients/{reachable['id']}/consent", json=body)
    assert response.status_code == 422
    assert await decisions_of(app, reachable["id"]) == []


async def test_a_hospital_system_imports_consent_and_a_clinician_whose_teams_do_not_follow_the_patient_sees_nothing(
        app, as_role, accounts, reachable):
    system = await as_role(Role.INTEGRATION)
    imported = await system.post(f"/patients/{reachable['id']}/consent",
                                 json={"channel": "all", "decision": "granted", "method": "import"})
    assert imported.status_code == 201, imported.text
    assert {line["recorded_by_kind"] for line in imported.json()["history"]} == {"api_key"}
    stranger = await accounts.member_of()
    assert (await stranger.get(f"/patients/{reachable['id']}/consent")).status_code == 404
    assert (await stranger.post(f"/patients/{reachable['id']}/consent", json={
        "channel": "sms", "decision": "withdrawn", "method": "verbal"})).status_code == 404
    assert len(await decisions_of(app, reachable["id"])) == len(EVERY_CHANNEL)


async def test_withdrawing_every_channel_ends_every_enrollment_of_the_patient(app, api: httpx.AsyncClient, reachable):
    enrollments = []
    for _ in range(2):
        response = await api.post("/enrollments", json={"patient_id": reachable["id"], "pathway_id": "api-follow-up",
                                                        "anchor": ANCHOR.isoformat()},
                                  headers={"Idempotency-Key": str(uuid.uuid4())})
        assert response.status_code == 201, response.text
        enrollments.append(response.json()["id"])

    withdrawn = await api.post(f"/patients/{reachable['id']}/consent",
                               json={"channel": "all", "decision": "withdrawn", "method": "written"})
    assert withdrawn.status_code == 201, withdrawn.text
    assert (withdrawn.json()["ended_enrollments"], withdrawn.json()["enrollments_not_answering"]) == (enrollments, [])
    assert withdrawn.json()["open_channels"] == []
    for enrollment_id in enrollments:
        enrollment = (await api.get(f"/enrollments/{enrollment_id}")).json()
        assert (enrollment["status"], enrollment["status_reason"]) == ("cancelled", "patient withdrew consent")
        assert {entry["status"] for entry in enrollment["timeline"]["entries"]} == {"cancelled"}
    cancels = [row for row in await audit_of(app, reachable["id"]) if row.action == "enrollment.cancel"]
    assert sorted(row.enrollment_id for row in cancels) == sorted(enrollments)
    assert {row.reason for row in cancels} == {"patient withdrew consent"}


def unsubscribe_path(app: FastAPI, patient_id: str) -> str:
    return "/u/" + unsubscribe_links(app.state.services.settings).url(patient_id, "email").rsplit("/u/", 1)[1]


async def test_the_unsubscribe_link_asks_first_and_stops_email_only_when_confirmed(app, anonymous, reachable):
    path = unsubscribe_path(app, reachable["id"])
    page = await anonymous.get(path)
    assert page.status_code == 200
    assert "不再接收医护团队的邮件" in page.text and f'action="{path}"' in page.text
    # A mail scanner following the link changes nothing.
    assert await decisions_of(app, reachable["id"]) == []

    for _ in range(2):  # a second press changes nothing more
        confirmed = await anonymous.post(path, content=b"List-Unsubscribe=One-Click",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert confirmed.status_code == 200
        assert "您将不再收到邮件" in confirmed.text
    assert await decisions_of(app, reachable["id"]) == [("email", "withdrawn", "link")]
    [audit] = [row for row in await audit_of(app, reachable["id"]) if row.action == "consent.withdraw"]
    assert (audit.actor_kind, audit.actor_id, audit.target, audit.reason) == (
        "patient", None, "email", "unsubscribe link")


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_tampered_unsubscribe_link_is_refused(app, anonymous, reachable, method: str):
    path = unsubscribe_path(app, reachable["id"])
    response = await anonymous.request(method, path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB"))
    assert response.status_code == 403
    assert "此链接无效" in response.text
    assert await decisions_of(app, reachable["id"]) == []


def alibaba_replies(*replies: tuple[str, str]) -> list[dict]:
    # Alibaba Cloud's SmsUp message, as its documentation shows it.
    return [{"phone_number": number, "send_time": "2026-11-28 10:00:00", "content": content, "sign_name": "医院随访",
             "dest_code": "1234", "sequence_id": 1234567890 + index} for index, (number, content) in enumerate(replies)]


async def test_a_stop_reply_from_alibaba_ends_sms_for_the_patient_audited(app, anonymous, reachable):
    token = RECEIPT_SECRETS["ALIBABA_SMS_REPORT_TOKEN"]
    chat = await anonymous.post(f"/inbound/sms/alibaba?token={token}",
                                json=alibaba_replies((reachable["national_number"], "谢谢医生")))
    assert chat.json() == {"code": 0, "msg": "成功"}
    assert await decisions_of(app, reachable["id"]) == []

    stop = await anonymous.post(f"/inbound/sms/alibaba?token={token}",
                                json=alibaba_replies((reachable["national_number"], "TD")))
    assert stop.json() == {"code": 0, "msg": "成功"}
    assert await decisions_of(app, reachable["id"]) == [("sms", "withdrawn", "sms-reply")]
    [audit] = [row for row in await audit_of(app, reachable["id"]) if row.action == "consent.withdraw"]
    assert (audit.actor_kind, audit.target, audit.reason) == ("patient", "sms", "replied STOP (sms-alibaba)")


async def test_a_reply_to_the_wrong_token_is_refused_audited_and_changes_nothing(app, anonymous, reachable):
    forged = await anonymous.post("/inbound/sms/alibaba?token=guessed",
                                  json=alibaba_replies((reachable["national_number"], "STOP")))
    assert forged.status_code == 403
    assert await decisions_of(app, reachable["id"]) == []
    async with app.state.services.sessions() as session:
        refused = await session.scalar(select(AccessAudit).where(AccessAudit.action == "sms.reply")
                                       .order_by(AccessAudit.id.desc()))
    assert (refused.actor_id, refused.outcome) == ("sms-alibaba", "denied")


async def test_a_signed_stop_reply_from_the_hospitals_gateway_ends_sms(app, anonymous, reachable):
    secret = RECEIPT_SECRETS["SMS_WEBHOOK_SECRET"]
    reply = {"sender": f"+86{reachable['national_number']}", "text": "退订"}
    body, headers = signed(secret, reply, timestamp=int(time.time()) - 3600)
    assert (await anonymous.post("/inbound/sms/webhook", content=body, headers=headers)).status_code == 403
    assert await decisions_of(app, reachable["id"]) == []

    body, headers = signed(secret, reply)
    taken = await anonymous.post("/inbound/sms/webhook", content=body, headers=headers)
    assert taken.status_code == 200, taken.text
    assert taken.json() == {"stopped": 1}
    assert await decisions_of(app, reachable["id"]) == [("sms", "withdrawn", "sms-reply")]
