"""Recording attendance at an appointment step through the API, against the real Temporal dev server and worker."""

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from services.principals import Role
from store.db import AccessAudit
from tests.api.accounts import Accounts
from tests.api.conftest import RECEIPT_SECRETS

PATHWAY = """\
id: api-video-visit
version: 1
title: API video visit
anchor: delivery_date
locales: [en]
steps:
  - kind: appointment
    id: video-visit
    mode: video
    at: 2s
    link: "https://video.example-hospital.test/join?ref={enrollment}-{step}-{occurrence}"
    remind: [1s]
    template: {en: {subject: "Your video visit", body: "{{ link }}"}}
    on_missed: {tag: missed-visit}
"""


async def _enrolled(api: httpx.AsyncClient) -> tuple[str, str]:
    deployed = await api.post("/pathways", content=PATHWAY.encode(), headers={"Content-Type": "application/yaml"})
    assert deployed.status_code in (200, 201), deployed.text  # 200: the same source, deployed by an earlier test
    patient = await api.post("/patients", json={"given_name": "Mei", "family_name": "Chen", "locale": "en",
                                                "email": f"{uuid.uuid4().hex}@example.test", "timezone": "UTC"})
    enrollment = await api.post("/enrollments", json={"patient_id": patient.json()["id"],
                                                      "pathway_id": "api-video-visit",
                                                      "anchor": datetime.now(UTC).isoformat()})
    assert enrollment.status_code == 201, enrollment.text
    return patient.json()["id"], enrollment.json()["id"]


async def test_a_missed_visit_is_recorded_audited_and_acted_on_and_cannot_be_recorded_twice(
        api: httpx.AsyncClient, accounts: Accounts):
    patient_id, enrollment_id = await _enrolled(api)
    path = f"/enrollments/{enrollment_id}/appointments/video-visit/1/attendance"

    early = await api.post(path, json={"outcome": "missed"})
    for _ in range(100):  # the visit is two seconds after enrolling
        recorded = await api.post(path, json={"outcome": "missed"})
        if recorded.status_code != 409:
            break
        await asyncio.sleep(0.1)
    twice = await api.post(path, json={"outcome": "attended"})

    assert early.status_code == 409 and "appointment video-visit #1 is at " in early.json()["detail"]
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["tags"] == ["missed-visit"]
    assert twice.json() == {"detail": "appointment video-visit #1 is already missed"}
    log = (await (await accounts.with_role(Role.AUDITOR)).get(f"/patients/{patient_id}/access-log")).json()
    audited = [line["target"] for line in log if line["action"] == "appointment.attendance"]
    # Every attempt, the refused ones too: an attempt on patient data is an access.
    assert len(audited) >= 3 and set(audited) == {"video-visit#1 missed", "video-visit#1 attended"}


async def test_attendance_names_what_it_takes(api: httpx.AsyncClient):
    _, enrollment_id = await _enrolled(api)
    path = f"/enrollments/{enrollment_id}/appointments/video-visit/1/attendance"

    wrong = await api.post(path, json={"outcome": "came"})
    unknown_step = await api.post(f"/enrollments/{enrollment_id}/appointments/no-visit/1/attendance",
                                  json={"outcome": "attended"})
    unknown_enrollment = await api.post("/enrollments/en_nobody/appointments/video-visit/1/attendance",
                                        json={"outcome": "attended"})

    assert wrong.status_code == 422
    assert (unknown_step.status_code, unknown_step.json()) == (
        409, {"detail": "no appointment no-visit #1 in this enrollment"})
    assert unknown_enrollment.status_code == 404


def _signed_by_the_video_service(payload: dict, secret: str = RECEIPT_SECRETS["VIDEO_SERVICE_SECRET"]):
    """Signed as the video service signs, from the documented scheme (not our code)."""
    body = json.dumps(payload).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"X-Carepath-Timestamp": stamp, "X-Carepath-Signature": f"sha256={digest}",
                  "Content-Type": "application/json"}


async def test_the_video_service_reports_attendance_signed_and_a_forged_report_changes_nothing(
        api: httpx.AsyncClient, anonymous: httpx.AsyncClient, app: FastAPI):
    _, enrollment_id = await _enrolled(api)
    report = {"enrollment_id": enrollment_id, "step_id": "video-visit", "occurrence": 1, "outcome": "attended"}

    body, headers = _signed_by_the_video_service(report, secret="guessed")
    forged = await anonymous.post("/appointments/attendance", content=body, headers=headers)
    for _ in range(100):  # the visit is two seconds after enrolling
        body, headers = _signed_by_the_video_service(report)
        recorded = await anonymous.post("/appointments/attendance", content=body, headers=headers)
        if recorded.status_code != 409:
            break
        await asyncio.sleep(0.1)

    assert forged.status_code == 403
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["calls"] == [] and recorded.json()["tags"] == []
    again = await api.post(f"/enrollments/{enrollment_id}/appointments/video-visit/1/attendance",
                           json={"outcome": "missed"})
    assert again.json() == {"detail": "appointment video-visit #1 is already attended"}
    async with app.state.services.sessions() as session:
        outcomes = (await session.scalars(select(AccessAudit.outcome).where(
            AccessAudit.action == "appointment.attendance", AccessAudit.actor_kind == "gateway",
            (AccessAudit.enrollment_id == enrollment_id) | AccessAudit.enrollment_id.is_(None)))).all()
    assert "denied" in outcomes and "allowed" in outcomes
