"""The console's patient pages over real HTTP, with the app's worker and Temporal: search, enroll
(a double click joins the same enrollment), answers taken by phone, the timeline and chart, cancel
with a reason; every read in the access log, and bad input refused with a page naming the problem."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from store.db import AccessAudit
from tests.api.accounts import Accounts, client_of

TEAM = "console-ward"
PATHWAY = f"""\
id: console-phone-phq9
version: 1
title: Mood check by phone
anchor: discharge
locales: [en, zh-CN]
parameters:
  phq9_referral_score: {{value: 10, source: "Kroenke, Spitzer & Williams 2001"}}
escalation_policies:
  mood:
    priority: high
    tiers:
      - {{notify: {TEAM}}}
steps:
  - kind: questionnaire
    id: phq9
    instrument: phq-9
    at: 1s
    expire: 1h
    template:
      en: {{subject: "How are you?", body: "{{{{ link }}}}"}}
      zh-CN: {{subject: "近况如何？", body: "{{{{ link }}}}"}}
    on:
      - when: score >= phq9_referral_score
        escalate: {{policy: mood, reason: "PHQ-9 10 or more"}}
"""
FREQUENCY = ["not_at_all", "several_days", "more_than_half_the_days", "nearly_every_day"]
SEEN = re.compile(r'/console/worklist/items\?seen=([0-9a-f]+)')
PHQ9_OF_15 = {f"answer.q{n}": FREQUENCY[v] for n, v in enumerate((2, 2, 2, 2, 2, 2, 2, 1, 0), start=1)}


@pytest.fixture(scope="module")
async def nurse(app: FastAPI, accounts: Accounts, api: httpx.AsyncClient):
    """A clinician of the pathway's team, signed in to the console with a session cookie."""
    if (await api.get(f"/teams/{TEAM}")).status_code == 404:
        assert (await accounts.admin.post("/teams", json={"id": TEAM, "name": "Console ward",
                                                          "email": "ward@example.test"})).status_code == 201
    deployed = await api.post("/pathways", content=PATHWAY.encode(), headers={"Content-Type": "application/yaml"})
    assert deployed.status_code in (201, 409), deployed.text
    email = f"{uuid.uuid4().hex[:12]}@staff.test"
    created = await accounts.admin.post("/staff", json={"name": "Sun Li", "email": email, "roles": ["clinician"],
                                                        "teams": [TEAM]})
    async with client_of(app) as browser:
        signed_in = await browser.post("/console/sign-in", data={
            "username": email, "password": created.json()["one_time_password"]})
        assert signed_in.status_code == 303
        browser.staff_id = created.json()["id"]
        yield browser


async def audit_lines(app: FastAPI) -> int:
    async with app.state.services.sessions() as session:
        return await session.scalar(select(func.count()).select_from(AccessAudit))


async def until_open(api: httpx.AsyncClient, enrollment_id: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        timeline = (await api.get(f"/enrollments/{enrollment_id}")).json()["timeline"]
        if timeline and timeline["entries"][0]["status"] == "open":
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"the questionnaire of {enrollment_id} did not open")


async def test_a_nurse_finds_enrolls_enters_phone_answers_and_cancels(app: FastAPI, nurse: httpx.AsyncClient,
                                                                     api: httpx.AsyncClient):
    family = f"Qian{uuid.uuid4().hex[:6]}"
    patient = (await api.post("/patients", json={
        "given_name": "Mei", "family_name": family, "email": f"{uuid.uuid4().hex}@example.test",
        "phone": "+86 139 0000 1234", "locale": "en", "timezone": "Asia/Shanghai"})).json()
    before = await nurse.get("/console/patients", params={"q": family})
    assert before.status_code == 200 and f"/console/patients/{patient['id']}" not in before.text, \
        "not hers until one of her teams is involved"

    form = {"pathway_id": "console-phone-phq9", "anchor": datetime.now(UTC).isoformat(),
            "idempotency_key": str(uuid.uuid4())}
    enrolled = await nurse.post(f"/console/patients/{patient['id']}/enroll", data=form)
    again = await nurse.post(f"/console/patients/{patient['id']}/enroll", data=form)
    assert enrolled.status_code == again.status_code == 303
    assert enrolled.headers["location"] == again.headers["location"], "a double click joins the same enrollment"
    enrollment_id = enrolled.headers["location"].rsplit("/", 1)[1]

    found = await nurse.get("/console/patients", params={"q": "1390000"})
    assert f"/console/patients/{patient['id']}" in found.text

    await until_open(api, enrollment_id)
    seen = SEEN.search((await nurse.get("/console/worklist")).text).group(1)
    form_page = await nurse.get(f"/console/enrollments/{enrollment_id}/questionnaires/phq9/1")
    assert form_page.status_code == 200 and 'name="answer.q9"' in form_page.text
    entered = await nurse.post(f"/console/enrollments/{enrollment_id}/questionnaires/phq9/1", data=PHQ9_OF_15)
    assert entered.status_code == 303, entered.text

    # The open worklist's poll: the new escalation comes with the patient's name, read and audited; then,
    # while nothing changes, 204s that read nothing and add nothing to the access log.
    deadline = time.monotonic() + 5
    while (news := await nurse.get("/console/worklist/items", params={"seen": seen})).status_code == 204:
        assert time.monotonic() < deadline, "the escalation did not reach the worklist in 5 s"
        await asyncio.sleep(0.5)
    assert news.status_code == 200 and "PHQ-9 10 or more" in news.text and f"{family} Mei" in news.text
    seen = SEEN.search(news.text).group(1)
    audited = await audit_lines(app)
    assert (await nurse.get("/console/worklist/items", params={"seen": seen})).status_code == 204
    assert await audit_lines(app) == audited

    page = await nurse.get(f"/console/enrollments/{enrollment_id}")
    assert page.status_code == 200
    assert '<figure class="chart" data-step="phq9" data-name="score">' in page.text
    assert 'data-parameter="phq9_referral_score"' in page.text
    assert "PHQ-9 10 or more" in page.text, "the escalation the answers raised, with its audit"
    assert 'data-channel="email" data-delivery="sent"' in page.text, "the invitation's channel, and that it went"

    paused = await nurse.post(f"/console/enrollments/{enrollment_id}/pause", data={"reason": "readmitted"})
    assert paused.status_code == 303
    assert 'data-testid="enrollment-paused">' in (page := await nurse.get(f"/console/enrollments/{enrollment_id}")).text
    assert "/resume" in page.text and "(readmitted)" in page.text
    assert (await nurse.post(f"/console/enrollments/{enrollment_id}/resume")).status_code == 303
    assert 'data-testid="enrollment-paused">' not in (await nurse.get(f"/console/enrollments/{enrollment_id}")).text

    refused = await nurse.post(f"/console/enrollments/{enrollment_id}/cancel", data={"reason": "  "})
    assert refused.status_code == 422 and "reason" in refused.text
    assert 'data-testid="enrollment-status">active' in (await nurse.get(f"/console/enrollments/{enrollment_id}")).text

    cancelled = await nurse.post(f"/console/enrollments/{enrollment_id}/cancel", data={"reason": "moved away"})
    assert cancelled.status_code == 303
    page = await nurse.get(f"/console/enrollments/{enrollment_id}")
    assert 'data-testid="enrollment-status">cancelled' in page.text and "moved away" in page.text

    async with app.state.services.sessions() as session:
        actions = set(await session.scalars(select(AccessAudit.action).where(
            AccessAudit.actor_id == nurse.staff_id, AccessAudit.patient_id == patient["id"])))
    assert {"patient.search", "enrollment.create", "enrollment.read", "patient.read", "response.enter",
            "enrollment.cancel", "escalation.read"} <= actions
