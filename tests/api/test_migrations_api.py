"""The migration routes against the real Temporal dev server and a worker (see conftest)."""

import uuid
from datetime import date, timedelta

import httpx

from tests.api.test_pathways import deploy

ANCHOR = date.today() + timedelta(days=30)  # ahead of today: nothing of the plan has happened yet
VERSION_1 = """\
id: api-migrated
version: 1
title: Migrated over HTTP
anchor: delivery_date
locales: [en]
steps:
  - kind: message
    id: hello
    at: day 2 09:00
    template: {en: {subject: "Hello", body: "Dear {{ patient.first_name }}"}}
  - kind: message
    id: goodbye
    at: day 9 09:00
    template: {en: {subject: "Goodbye", body: "Dear {{ patient.first_name }}"}}
"""
VERSION_2 = VERSION_1.replace("version: 1", "version: 2").replace("id: goodbye\n    at: day 9", "id: goodbye\n    at: day 10")


async def _enrolled_on_version_1(api: httpx.AsyncClient, patient: dict) -> str:
    assert (await deploy(api, VERSION_1)).status_code in (200, 201)
    response = await api.post("/enrollments", headers={"Idempotency-Key": str(uuid.uuid4())}, json={
        "patient_id": patient["id"], "pathway_id": "api-migrated", "pathway_version": 1, "anchor": ANCHOR.isoformat()})
    assert response.status_code == 201, response.text
    assert (await deploy(api, VERSION_2)).status_code in (200, 201)
    return response.json()["id"]


async def test_a_dry_run_reports_and_changes_nothing_then_applying_moves_the_enrollment_and_is_audited(
        api: httpx.AsyncClient, patient: dict):
    enrollment_id = await _enrolled_on_version_1(api, patient)
    order = {"to_version": 2, "enrollment_ids": [enrollment_id]}

    dry = await api.post("/pathways/api-migrated/migrations", json=order | {"dry_run": True})

    assert dry.status_code == 200, dry.text
    [report] = dry.json()["enrollments"]
    assert report["result"] is None and report["plan"]["blocked"] == []
    assert [(m["step_id"], m["was_due"], m["due"]) for m in report["plan"]["moved"]] == [
        ("goodbye", f"{ANCHOR + timedelta(days=9)}T01:00:00Z", f"{ANCHOR + timedelta(days=10)}T01:00:00Z")]
    assert f"  moved    goodbye#1 {ANCHOR + timedelta(days=9)} 09:00 -> goodbye#1 {ANCHOR + timedelta(days=10)} 09:00" \
        in report["text"]  # in the patient's zone, Asia/Shanghai
    assert (await api.get(f"/enrollments/{enrollment_id}")).json()["pathway_version"] == 1

    applied = await api.post("/pathways/api-migrated/migrations", json=order)

    assert applied.status_code == 200 and [e["result"] for e in applied.json()["enrollments"]] == ["migrated"]
    enrollment = (await api.get(f"/enrollments/{enrollment_id}")).json()
    assert enrollment["pathway_version"] == 2
    assert [e["due"] for e in enrollment["timeline"]["entries"] if e["step_id"] == "goodbye"] == [
        f"{ANCHOR + timedelta(days=10)}T01:00:00Z"]
    for action, target in (("enrollment.migration_plan", "api-migrated -> v2"),
                           ("enrollment.migrate", "api-migrated v1 -> v2")):
        lines = (await api.get("/audit", params={"action": action})).json()
        assert [line["target"] for line in lines if line["enrollment_id"] == enrollment_id] == [target]
    # A repeat finds nobody on an older version.
    assert (await api.post("/pathways/api-migrated/migrations", json=order)).json()["enrollments"] == []


async def test_a_rollback_restores_the_old_version_and_refuses_an_enrollment_of_another_pathway(
        api: httpx.AsyncClient, patient: dict):
    enrollment_id = await _enrolled_on_version_1(api, patient)
    await api.post("/pathways/api-migrated/migrations", json={"to_version": 2, "enrollment_ids": [enrollment_id]})

    undone = await api.post("/pathways/api-migrated/migrations/rollback",
                            json={"enrollment_ids": [enrollment_id, "en_not_ours"]})

    assert undone.status_code == 200
    assert undone.json() == [
        {"enrollment_id": enrollment_id, "rolled_back": True, "detail": "api-migrated v2 -> v1 (rolled back)"},
        {"enrollment_id": "en_not_ours", "rolled_back": False,
         "detail": "no enrollment en_not_ours on pathway 'api-migrated'"}]
    assert (await api.get(f"/enrollments/{enrollment_id}")).json()["pathway_version"] == 1


async def test_an_enrollment_id_not_of_our_making_is_refused_before_any_query(api: httpx.AsyncClient):
    # As JSON text: a NUL and a lone surrogate, which PostgreSQL and SQLite refuse, and a path.
    for listed in (r'"en_1\u0000"', r'"en_\ud800"', r'"../en_1"'):
        response = await api.post("/pathways/api-migrated/migrations/rollback",
                                  content=f'{{"enrollment_ids": [{listed}]}}', headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (listed, response.text)


async def test_migrating_to_a_version_never_deployed_is_404(api: httpx.AsyncClient):
    response = await api.post("/pathways/api-migrated/migrations", json={"to_version": 99, "dry_run": True})
    assert response.status_code == 404 and "no version 99" in response.json()["detail"]
