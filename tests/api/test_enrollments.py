"""Enrollment routes against the real Temporal dev server and a worker (see conftest)."""

import asyncio
import time
import uuid
from datetime import date, timedelta

import httpx
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from api.routes.enrollments import QUERY_TIMEOUT
from services.settings import Settings
from tests.api.accounts import Accounts
from workflows.contracts import workflow_id_for

# Ahead of today: touchpoints already overdue at enrollment are skipped by the workflow.
ANCHOR = date.today() + timedelta(days=30)


def enrollment(patient: dict, **fields) -> dict:
    return {"patient_id": patient["id"], "pathway_id": "api-follow-up", "anchor": ANCHOR.isoformat()} | fields


async def workflow_runs(temporal: WorkflowEnvironment, workflow_id: str) -> int:
    """How many runs the server has for a workflow id, once its visibility store has caught up."""
    for _ in range(50):
        count = (await temporal.client.count_workflows(f"WorkflowId = '{workflow_id}'")).count
        if count:
            return count
        await asyncio.sleep(0.1)
    return 0


def key() -> dict:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def test_enrolling_starts_the_pathway_and_shows_its_timeline(api: httpx.AsyncClient, patient: dict):
    response = await api.post("/enrollments", json=enrollment(patient), headers=key())
    assert response.status_code == 201, response.text
    enrolled = response.json()
    assert enrolled["status"] == "active"
    assert enrolled["workflow_id"] == workflow_id_for(enrolled["id"])
    assert (enrolled["pathway_version"], enrolled["timezone"]) == (1, "Asia/Shanghai")  # the newest; the patient's
    assert enrolled["anchor"] == f"{ANCHOR}T00:00:00+08:00"
    timeline = enrolled["timeline"]
    assert [(e["step_id"], e["occurrence"], e["status"]) for e in timeline["entries"]] == [
        ("check-in", 1, "planned"), ("check-in", 2, "planned"), ("check-in", 3, "planned")]
    assert timeline["entries"][0]["due"] == f"{ANCHOR + timedelta(days=1)}T02:00:00Z"  # 10:00 in Shanghai

    read = await api.get(f"/enrollments/{enrolled['id']}")
    assert read.status_code == 200
    assert read.json() == enrolled


async def test_enrolling_answers_with_the_plan_while_no_worker_runs(settings: Settings, own_database_url: str):
    # A task queue no worker polls: a query of the new workflow would wait until QUERY_TIMEOUT and
    # answer no timeline, as it did behind a backlog of 10,000 enrollments.
    app = create_app(settings.model_copy(update={"DATABASE_URL": own_database_url,
                                                 "TASK_QUEUE": f"no-worker-{uuid.uuid4()}"}))
    async with app.router.lifespan_context(app), Accounts.of(app) as accounts:
        api = await accounts.everything()
        patient = await api.post("/patients", json={"given_name": "Wei", "family_name": "Li", "locale": "zh-CN",
                                                    "email": "wei.li@example.test", "timezone": "Asia/Shanghai"})
        started = time.monotonic()
        response = await api.post("/enrollments", json=enrollment(patient.json()))
        answered_in = time.monotonic() - started

    assert response.status_code == 201, response.text
    timeline = response.json()["timeline"]
    assert [(e["step_id"], e["occurrence"], e["status"]) for e in timeline["entries"]] == [
        ("check-in", 1, "planned"), ("check-in", 2, "planned"), ("check-in", 3, "planned")]
    assert timeline["next_due"] == timeline["entries"][0]["due"] == f"{ANCHOR + timedelta(days=1)}T02:00:00Z"
    assert answered_in < QUERY_TIMEOUT.total_seconds()


async def test_the_same_idempotency_key_gives_the_same_enrollment(api: httpx.AsyncClient, patient: dict,
                                                                  temporal: WorkflowEnvironment):
    request, headers = enrollment(patient, anchor=f"{ANCHOR}T08:30:00+08:00"), key()
    first = await api.post("/enrollments", json=request, headers=headers)
    replayed = await api.post("/enrollments", json=request, headers=headers)
    assert (first.status_code, replayed.status_code) == (201, 200)
    assert replayed.json()["id"] == first.json()["id"]
    assert await workflow_runs(temporal, first.json()["workflow_id"]) == 1

    conflict = await api.post("/enrollments", json=request | {"anchor": ANCHOR.isoformat()}, headers=headers)
    assert conflict.status_code == 409
    assert conflict.json() == {"detail": f"idempotency key '{headers['Idempotency-Key']}' was already used for "
                                         f"a different enrollment"}


async def test_an_explicit_version_and_time_zone_are_kept(api: httpx.AsyncClient, patient: dict):
    response = await api.post("/enrollments", json=enrollment(patient, pathway_version=1, timezone="Asia/Kolkata"))
    assert response.status_code == 201, response.text
    assert response.json()["timezone"] == "Asia/Kolkata"
    assert response.json()["timeline"]["entries"][0]["due"] == f"{ANCHOR + timedelta(days=1)}T04:30:00Z"


async def test_unknown_patients_pathways_and_versions_are_named(api: httpx.AsyncClient, patient: dict):
    unknown_patient = await api.post("/enrollments", json=enrollment(patient, patient_id="pt_nobody"))
    assert (unknown_patient.status_code, unknown_patient.json()) == (404, {"detail": "patient 'pt_nobody' not found"})
    unknown_pathway = await api.post("/enrollments", json=enrollment(patient, pathway_id="no-such-pathway"))
    assert (unknown_pathway.status_code, unknown_pathway.json()) == (
        422, {"detail": "no pathway 'no-such-pathway' is deployed"})
    unknown_version = await api.post("/enrollments", json=enrollment(patient, pathway_version=7))
    assert (unknown_version.status_code, unknown_version.json()) == (
        422, {"detail": "pathway 'api-follow-up' has no version 7"})


async def test_anchors_are_dates_or_date_times_with_an_offset(api: httpx.AsyncClient, patient: dict):
    for anchor, complaint in [("01/12/2026", "'01/12/2026' is not a date (2026-12-01"),
                              ("2026-12-01T09:00", "'2026-12-01T09:00' has no UTC offset"),
                              ("2026-13-01", "'2026-13-01' is not a date")]:
        response = await api.post("/enrollments", json=enrollment(patient, anchor=anchor))
        assert response.status_code == 422, anchor
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "anchor"]
        assert complaint in error["msg"]
    bad_zone = await api.post("/enrollments", json=enrollment(patient, timezone="Mars/Olympus"))
    assert bad_zone.status_code == 422
    assert "not an IANA time zone" in bad_zone.json()["detail"][0]["msg"]


async def test_cancelling_drops_what_is_left_and_cannot_be_repeated(api: httpx.AsyncClient, patient: dict,
                                                                    temporal: WorkflowEnvironment):
    enrolled = (await api.post("/enrollments", json=enrollment(patient))).json()
    cancelled = await api.post(f"/enrollments/{enrolled['id']}/cancel", json={"reason": "readmitted"})
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert (body["status"], body["status_reason"]) == ("cancelled", "readmitted")
    assert {(e["status"], e["detail"]) for e in body["timeline"]["entries"]} == {("cancelled", "readmitted")}

    # Refused by the workflow's validator if it is still closing, by the API if it has closed...
    again = await api.post(f"/enrollments/{enrolled['id']}/cancel", json={"reason": "twice"})
    assert (again.status_code, again.json()) == (409, {"detail": "the enrollment is already cancelled"})
    # ...and certainly once it has closed, when there is no workflow left to ask.
    await temporal.client.get_workflow_handle(enrolled["workflow_id"]).result()
    closed = await api.post(f"/enrollments/{enrolled['id']}/cancel", json={"reason": "thrice"})
    assert (closed.status_code, closed.json()) == (409, {"detail": "the enrollment is already cancelled"})

    read = (await api.get(f"/enrollments/{enrolled['id']}")).json()
    assert read["status"] == "cancelled" and read["ended_at"] is not None


async def test_cancelling_needs_a_reason_and_an_enrollment(api: httpx.AsyncClient, patient: dict):
    enrolled = (await api.post("/enrollments", json=enrollment(patient))).json()
    blank = await api.post(f"/enrollments/{enrolled['id']}/cancel", json={"reason": "   "})
    assert blank.status_code == 422
    assert (await api.get(f"/enrollments/{enrolled['id']}")).json()["status"] == "active"
    missing = await api.post("/enrollments/en_nothing/cancel", json={"reason": "gone"})
    assert (missing.status_code, missing.json()) == (404, {"detail": "enrollment 'en_nothing' not found"})
