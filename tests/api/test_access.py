"""Who sees what, and the record of it: a clinician's teams bound their view; every read of patient
data is in the audit, which nobody can change; sign-in, keys and the console's cookie."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from api.main import create_app
from services.principals import Role
from services.settings import Settings
from tests.api.accounts import Accounts, client_of
from tests.identity_provider import IdentityProvider


def pathway_for(team: str) -> str:
    """A pathway whose only work is a phone call for `team`, two seconds after enrollment."""
    return f"""\
id: {team}-calls
version: 1
title: Calls for {team}
anchor: start
locales: [en]
steps:
  - kind: call
    id: check-in
    at: 2s
    team: {team}
    script: {{en: "Ask how the patient is."}}
"""


async def enrolled(api: httpx.AsyncClient, team: str) -> tuple[str, str]:
    """A new patient enrolled in `team`'s pathway: (patient id, enrollment id)."""
    patient = await api.post("/patients", json={"given_name": "Mei", "family_name": "Chen", "locale": "en",
                                                "timezone": "Asia/Shanghai"})
    assert patient.status_code == 201, patient.text
    enrollment = await api.post("/enrollments", json={"patient_id": patient.json()["id"], "pathway_id": f"{team}-calls",
                                                      "anchor": datetime.now(UTC).isoformat()})
    assert enrollment.status_code == 201, enrollment.text
    return patient.json()["id"], enrollment.json()["id"]


@pytest.fixture(scope="module")
async def two_teams(api: httpx.AsyncClient) -> tuple[str, str]:
    teams = tuple(f"ward-{uuid.uuid4().hex[:6]}" for _ in range(2))
    for team in teams:
        created = await api.post("/teams", json={"id": team, "name": team, "email": f"{team}@hospital.test"})
        assert created.status_code == 201, created.text
        deployed = await api.post("/pathways", content=pathway_for(team), headers={"Content-Type": "application/yaml"})
        assert deployed.status_code == 201, deployed.text
    return teams


async def until_listed(client: httpx.AsyncClient, path: str, enrollment_id: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        items = (await client.get(path)).json()
        found = [item for item in items if item["enrollment_id"] == enrollment_id]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            pytest.fail(f"nothing of {enrollment_id} on {path}")
        await asyncio.sleep(0.2)


async def test_a_clinician_sees_only_what_their_teams_are_involved_in(api: httpx.AsyncClient, accounts: Accounts,
                                                                      two_teams: tuple[str, str]):
    team_a, team_b = two_teams
    patient_a, enrollment_a = await enrolled(api, team_a)
    patient_b, enrollment_b = await enrolled(api, team_b)
    nurse_a = await accounts.member_of(team_a)
    task_b = await until_listed(api, f"/tasks?team={team_b}", enrollment_b)

    assert (await nurse_a.get(f"/patients/{patient_a}")).status_code == 200
    assert (await nurse_a.get(f"/enrollments/{enrollment_a}")).status_code == 200
    task_a = await until_listed(nurse_a, "/worklist", enrollment_a)
    assert task_a["team"] == team_a
    log = (await (await accounts.with_role(Role.AUDITOR)).get(f"/patients/{patient_a}/access-log")).json()
    assert ("worklist.call", enrollment_a, task_a["id"]) in [(line["action"], line["enrollment_id"], line["target"])
                                                              for line in log]

    for path in (f"/patients/{patient_b}", f"/enrollments/{enrollment_b}", f"/tasks/{task_b['id']}"):
        hidden = await nurse_a.get(path)
        assert hidden.status_code == 404, f"{path}: {hidden.text}"
    assert all(item["enrollment_id"] != enrollment_b for item in (await nurse_a.get("/worklist")).json())
    assert all(item["enrollment_id"] != enrollment_b for item in (await nurse_a.get("/tasks")).json())
    for path in (f"/worklist?team={team_b}", f"/tasks?team={team_b}"):
        other = await nurse_a.get(path)
        assert (other.status_code, other.json()) == (403, {"detail": f"you are not a member of team '{team_b}'"})
    cancel = await nurse_a.post(f"/enrollments/{enrollment_b}/cancel", json={"reason": "not mine"})
    assert cancel.status_code == 404
    outcome = await nurse_a.post(f"/tasks/{task_b['id']}/outcome", json={"outcome": "not_reached"})
    assert outcome.status_code == 404
    into_b = await nurse_a.post("/enrollments", json={"patient_id": patient_a, "pathway_id": f"{team_b}-calls",
                                                      "anchor": datetime.now(UTC).isoformat()})
    assert into_b.status_code == 403 and team_b in into_b.json()["detail"]


async def test_reading_a_patient_is_in_their_access_log(api: httpx.AsyncClient, accounts: Accounts,
                                                        two_teams: tuple[str, str]):
    team_a, _ = two_teams
    patient, _ = await enrolled(api, team_a)
    nurse_id, nurse = await accounts.staff([Role.CLINICIAN], [team_a])
    auditor = await accounts.with_role(Role.AUDITOR)

    read = await nurse.get(f"/patients/{patient}", headers={"X-Access-Reason": "phone follow-up"})
    assert read.status_code == 200

    log = await auditor.get(f"/patients/{patient}/access-log")
    assert log.status_code == 200, log.text
    nurse_lines = [line for line in log.json() if line["actor_id"] == nurse_id]
    assert [(line["action"], line["outcome"], line["reason"], line["actor_kind"], line["actor_roles"])
            for line in nurse_lines] == [("patient.read", "allowed", "phone follow-up", "staff", "clinician")]
    assert nurse_lines[0]["client_ip"] and nurse_lines[0]["enrollment_id"] is None
    actions = {line["action"] for line in log.json()}
    assert {"patient.create", "enrollment.create"} <= actions
    # Reading the log is itself a use of the patient's data.
    again = await auditor.get(f"/patients/{patient}/access-log")
    assert again.json()[0]["action"] == "patient.access_log.read"
    assert (await nurse.get(f"/patients/{patient}/access-log")).status_code == 403


async def test_the_audit_cannot_be_changed(app: FastAPI, api: httpx.AsyncClient, two_teams: tuple[str, str]):
    patient, _ = await enrolled(api, two_teams[0])
    engine = app.state.services.sessions.kw["bind"]
    for statement in ("UPDATE access_audit SET actor_id = 'someone-else' WHERE patient_id = :patient",
                      "DELETE FROM access_audit WHERE patient_id = :patient"):
        # DBAPIError: asyncpg reports PostgreSQL's RAISE as no narrower kind of error.
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(text(statement), {"patient": patient})
    async with engine.connect() as connection:
        kept = await connection.scalar(text("SELECT count(*) FROM access_audit WHERE patient_id = :patient"),
                                       {"patient": patient})
    assert kept >= 2


async def test_a_refused_attempt_is_audited(accounts: Accounts):
    manager_id, manager = await accounts.staff([Role.CLINICAL_MANAGER])
    refused = await manager.get("/worklist")
    assert refused.status_code == 403
    auditor = await accounts.with_role(Role.AUDITOR)
    lines = (await auditor.get("/audit", params={"actor": manager_id, "outcome": "denied"})).json()
    assert [line["action"] for line in lines] == ["GET /worklist"]


async def test_sign_in_failures_lock_the_account(accounts: Accounts, anonymous: httpx.AsyncClient):
    email = f"{uuid.uuid4().hex[:10]}@staff.test"
    created = await accounts.admin.post("/staff", json={"name": "Li Na", "email": email, "roles": ["clinician"]})
    password = created.json()["one_time_password"]
    for _ in range(5):
        wrong = await anonymous.post("/auth/token", data={"username": email, "password": "not-the-password"})
        assert wrong.status_code == 401
    locked = await anonymous.post("/auth/token", data={"username": email, "password": password})
    assert locked.status_code == 401
    unknown = await anonymous.post("/auth/token", data={"username": "nobody@staff.test", "password": "whatever-it-is"})
    assert unknown.json() == wrong.json()  # the same words: whether an account exists is not told
    assert (await accounts.admin.get(f"/staff/{created.json()['id']}")).json()["locked_until"] is not None
    reset = await accounts.admin.post(f"/staff/{created.json()['id']}/reset-password")
    fresh = await anonymous.post("/auth/token", data={"username": email,
                                                      "password": reset.json()["one_time_password"]})
    assert fresh.status_code == 200


async def test_a_deactivated_account_is_refused_at_once(accounts: Accounts):
    staff_id, nurse = await accounts.staff([Role.CLINICIAN])
    assert (await nurse.get("/auth/me")).status_code == 200
    assert (await accounts.admin.post(f"/staff/{staff_id}/deactivate")).json()["active"] is False
    assert (await nurse.get("/auth/me")).status_code == 401


async def test_an_api_key_is_shown_once_used_and_revoked(app: FastAPI, accounts: Accounts):
    created = await accounts.admin.post("/api-keys", json={"name": "HIS feed"})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("cpk_") and created.json()["prefix"] in key
    listed = {k["id"]: k for k in (await accounts.admin.get("/api-keys")).json()}
    assert "key" not in listed[created.json()["id"]] and listed[created.json()["id"]]["last_used_at"] is None

    async with client_of(app, {"Authorization": f"Bearer {key}"}) as system:
        me = await system.get("/auth/me")
        assert (me.status_code, me.json()["kind"], me.json()["roles"]) == (200, "api_key", ["integration"])
        assert (await system.get("/worklist")).status_code == 403
        listed = {k["id"]: k for k in (await accounts.admin.get("/api-keys")).json()}
        assert listed[created.json()["id"]]["last_used_at"] is not None
        revoked = await accounts.admin.post(f"/api-keys/{created.json()['id']}/revoke")
        assert revoked.json()["revoked_at"] is not None
        assert (await system.get("/auth/me")).status_code == 401
    admin_key = await accounts.admin.post("/api-keys", json={"name": "too strong", "roles": ["admin"]})
    assert admin_key.status_code == 422


async def test_the_console_session_is_a_strict_http_only_cookie(app: FastAPI, accounts: Accounts):
    email = f"{uuid.uuid4().hex[:10]}@staff.test"
    created = await accounts.admin.post("/staff", json={"name": "Zhou Min", "email": email, "roles": ["clinician"]})
    async with client_of(app) as browser:
        signed_in = await browser.post("/auth/session", data={"username": email,
                                                              "password": created.json()["one_time_password"]})
        assert signed_in.status_code == 200, signed_in.text
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert (await browser.get("/auth/me")).json()["id"] == created.json()["id"]
        cross_site = await browser.post("/enrollments/x/cancel", json={"reason": "csrf"},
                                        headers={"Origin": "https://evil.example"})
        assert (cross_site.status_code, cross_site.json()) == (403, {"detail": "cross-site request from "
                                                                               "https://evil.example refused"})
        same_site = await browser.post("/enrollments/x/cancel", json={"reason": "mine"},
                                       headers={"Origin": app.state.services.settings.PUBLIC_BASE_URL})
        assert same_site.status_code == 404
        assert (await browser.delete("/auth/session")).status_code == 204
        assert (await browser.get("/auth/me")).status_code == 401


async def test_the_hospital_s_single_sign_on_gets_in_as_the_matching_account(settings: Settings, own_database_url: str):
    with IdentityProvider() as provider:
        app = create_app(settings.model_copy(update={
            "DATABASE_URL": own_database_url, "OIDC_ISSUER": provider.ISSUER,
            "OIDC_AUDIENCE": "carepath", "OIDC_JWKS_URL": provider.jwks_url}))
        async with app.router.lifespan_context(app), Accounts.of(app) as accounts:
            created = await accounts.admin.post("/staff", json={"name": "Li Na", "email": "li.na@hospital.example",
                                                                "roles": ["clinician"]})
            async with client_of(app, {"Authorization": f"Bearer {provider.token()}"}) as nurse:
                me = await nurse.get("/auth/me")
                assert (me.status_code, me.json()["id"], me.json()["roles"]) == (200, created.json()["id"], ["clinician"])
                assert (await nurse.get("/staff")).status_code == 403  # roles are carepath's, not the provider's
            unknown = provider.token(sub="someone-else", email="someone.else@hospital.example")
            async with client_of(app, {"Authorization": f"Bearer {unknown}"}) as stranger:
                assert (await stranger.get("/auth/me")).status_code == 401


async def test_sign_in_and_form_links_are_rate_limited_per_address(settings: Settings, own_database_url: str):
    app = create_app(settings.model_copy(update={"DATABASE_URL": own_database_url,
                                                 "SIGN_IN_RATE_LIMIT": "3/minute", "FORM_RATE_LIMIT": "2/minute"}))
    # An address of this run's own: the counts are the API process's, and this test runs once per database.
    address = f"2001:db8::{uuid.uuid4().hex[:4]}"
    async with app.router.lifespan_context(app), client_of(app, address=address) as anonymous:
        attempts = [await anonymous.post("/auth/token", data={"username": "x@staff.test", "password": "guess"})
                    for _ in range(4)]
        assert [attempt.status_code for attempt in attempts] == [401, 401, 401, 429]
        assert 1 <= int(attempts[-1].headers["Retry-After"]) <= 60
        forms = [await anonymous.get("/f/not-a-token") for _ in range(3)]
        assert [form.status_code for form in forms] == [403, 403, 429]


async def test_a_body_past_one_megabyte_is_refused_however_it_is_sent(api: httpx.AsyncClient):
    too_big = b"# " + b"x" * (1024 * 1024) + b"\n"
    declared = await api.post("/pathways", content=too_big, headers={"Content-Type": "application/yaml"})
    assert (declared.status_code, declared.json()) == (413, {"detail": "the request body is larger than 1048576 bytes"})

    async def chunks():  # no Content-Length: counted as it streams
        for start in range(0, len(too_big), 64 * 1024):
            yield too_big[start:start + 64 * 1024]

    streamed = await api.post("/pathways", content=chunks(), headers={"Content-Type": "application/yaml"})
    assert streamed.status_code == 413
    assert (await api.post("/patients", content=b"{}", headers={"Content-Type": "application/json"})).status_code == 422
