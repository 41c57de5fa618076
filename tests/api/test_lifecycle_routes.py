"""Pause, resume, anchor moves and patient events over the API, against the Temporal dev server and a
worker (see conftest): what they change, what they refuse and say why, and the audit of each."""

import asyncio
from datetime import datetime, timedelta

import httpx
from temporalio.testing import WorkflowEnvironment

from services.principals import Role
from tests.api.test_enrollments import ANCHOR, enrollment


async def _enrolled(api: httpx.AsyncClient, patient: dict) -> dict:
    response = await api.post("/enrollments", json=enrollment(patient))
    assert response.status_code == 201, response.text
    return response.json()


async def _actions(accounts, patient_id: str) -> list[str]:
    auditor = await accounts.with_role(Role.AUDITOR)
    lines = (await auditor.get(f"/patients/{patient_id}/access-log", params={"limit": 100})).json()
    return [line["action"] for line in reversed(lines)]


async def test_pause_and_resume_say_why_they_cannot_apply_and_are_audited(api: httpx.AsyncClient, patient: dict,
                                                                           accounts):
    enrolled = await _enrolled(api, patient)
    path = f"/enrollments/{enrolled['id']}"

    paused = await api.post(f"{path}/pause", json={"reason": "readmitted to ward 5"})
    again = await api.post(f"{path}/pause", json={"reason": "twice"})
    resumed = await api.post(f"{path}/resume")
    not_paused = await api.post(f"{path}/resume")

    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "active"
    assert paused.json()["timeline"]["paused"]["reason"] == "readmitted to ward 5"
    assert again.status_code == 409 and again.json()["detail"].startswith("the enrollment is already paused, since ")
    assert resumed.status_code == 200 and resumed.json()["timeline"]["paused"] is None
    assert (not_paused.status_code, not_paused.json()) == (409, {"detail": "the enrollment is not paused"})
    assert (await api.post(f"{path}/pause", json={"reason": " "})).status_code == 422
    missing = await api.post("/enrollments/en_nothing/pause", json={"reason": "readmitted"})
    assert (missing.status_code, missing.json()) == (404, {"detail": "enrollment 'en_nothing' not found"})
    assert [event["kind"] for event in resumed.json()["timeline"]["events"]] == ["pause", "resume"]
    assert (await _actions(accounts, patient["id"]))[-4:] == [
        "enrollment.pause", "enrollment.pause", "enrollment.resume", "enrollment.resume"]


async def test_moving_the_anchor_recomputes_what_is_to_come(api: httpx.AsyncClient, patient: dict, accounts):
    enrolled = await _enrolled(api, patient)
    later = (ANCHOR + timedelta(days=7)).isoformat()

    moved = await api.post(f"/enrollments/{enrolled['id']}/anchor", json={"anchor": later, "reason": "rescheduled"})
    same = await api.post(f"/enrollments/{enrolled['id']}/anchor", json={"anchor": later, "reason": "again"})
    malformed = await api.post(f"/enrollments/{enrolled['id']}/anchor", json={"anchor": "next week", "reason": "x"})

    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["anchor"].startswith(later)
    before = [datetime.fromisoformat(e["due"]) for e in enrolled["timeline"]["entries"]]
    after = [datetime.fromisoformat(e["due"]) for e in body["timeline"]["entries"]]
    assert [b - a for a, b in zip(before, after, strict=True)] == [timedelta(days=7)] * 3
    assert (same.status_code, same.json()) == (409, {"detail": "the enrollment already hangs on that anchor"})
    assert malformed.status_code == 422
    assert (await api.get(f"/enrollments/{enrolled['id']}")).json()["anchor"].startswith(later)
    assert (await _actions(accounts, patient["id"])).count("enrollment.anchor") == 2  # the refused one too


async def _statuses(api: httpx.AsyncClient, enrollments: list[dict], wanted: str) -> list[str]:
    """The stored statuses, once the workflows have recorded their end (real time: a few seconds at most)."""
    for _ in range(100):
        statuses = [(await api.get(f"/enrollments/{e['id']}")).json()["status"] for e in enrollments]
        if set(statuses) == {wanted}:
            break
        await asyncio.sleep(0.1)
    return statuses


async def test_patient_events_reach_every_enrollment_and_a_death_is_for_good(
        api: httpx.AsyncClient, patient: dict, accounts, as_role):
    enrollments = [await _enrolled(api, patient), await _enrolled(api, patient)]
    ids = [e["id"] for e in enrollments]
    hospital_system = await as_role(Role.INTEGRATION)
    events = f"/patients/{patient['id']}/events"

    readmitted = await hospital_system.post(events, json={"type": "readmitted", "reason": "ward 5"})
    repeated = await hospital_system.post(events, json={"type": "readmitted"})
    discharged = await hospital_system.post(events, json={"type": "discharged",
                                                          "anchor": (ANCHOR + timedelta(days=2)).isoformat()})
    deceased = await hospital_system.post(events, json={"type": "deceased"})

    assert readmitted.status_code == 200, readmitted.text
    assert [(c["enrollment_id"], c["changes"]) for c in readmitted.json()["enrollments"]] == [
        (enrollment_id, ["enrollment.pause"]) for enrollment_id in ids]
    assert {c["unchanged"].split(",")[0] for c in repeated.json()["enrollments"]} == {"the enrollment is already paused"}
    assert [c["changes"] for c in discharged.json()["enrollments"]] == [["enrollment.anchor", "enrollment.resume"]] * 2
    assert [c["changes"] for c in deceased.json()["enrollments"]] == [["enrollment.stop"]] * 2
    assert await _statuses(api, enrollments, "stopped") == ["stopped"] * 2
    stopped = (await api.get(f"/enrollments/{ids[0]}")).json()
    assert stopped["status_reason"] == "the patient has died"
    assert {e["status"] for e in stopped["timeline"]["entries"]} == {"cancelled"}

    enrolling = await api.post("/enrollments", json=enrollment(patient))
    assert (enrolling.status_code, enrolling.json()) == (
        409, {"detail": f"patient '{patient['id']}' is recorded as deceased and cannot be enrolled"})
    after_death = await hospital_system.post(events, json={"type": "readmitted"})
    assert after_death.status_code == 409 and "recorded as deceased" in after_death.json()["detail"]
    assert (await hospital_system.post(events, json={"type": "deceased"})).status_code == 200  # a repeat is safe
    assert (await api.get(f"/patients/{patient['id']}")).json()["deceased_at"] is not None

    actions = await _actions(accounts, patient["id"])
    assert [a for a in actions if a.startswith("patient.event.")] == [
        "patient.event.readmitted", "patient.event.readmitted", "patient.event.discharged", "patient.event.deceased",
        "patient.event.readmitted", "patient.event.deceased"]
    assert actions.count("enrollment.pause") == 2 and actions.count("enrollment.stop") >= 2


async def test_a_transfer_or_a_withdrawal_ends_every_enrollment_with_its_reason(api: httpx.AsyncClient, as_role,
                                                                               temporal: WorkflowEnvironment):
    hospital_system = await as_role(Role.INTEGRATION)
    for kind, reason, recorded in (("transferred", "to Renji Hospital", "transferred: to Renji Hospital"),
                                   ("withdrew", None, "patient withdrew")):
        patient = (await api.post("/patients", json={"given_name": "Wei", "family_name": "Li", "locale": "en",
                                                     "timezone": "UTC"})).json()
        enrolled = await _enrolled(api, patient)
        response = await hospital_system.post(f"/patients/{patient['id']}/events",
                                              json={"type": kind} | ({"reason": reason} if reason else {}))
        assert response.status_code == 200, response.text
        assert response.json()["enrollments"] == [
            {"enrollment_id": enrolled["id"], "changes": ["enrollment.cancel"], "unchanged": None}]
        await temporal.client.get_workflow_handle(enrolled["workflow_id"]).result()
        read = (await api.get(f"/enrollments/{enrolled['id']}")).json()
        assert (read["status"], read["status_reason"]) == ("cancelled", recorded)


async def test_a_patient_event_with_a_field_its_type_does_not_take_changes_nothing(api: httpx.AsyncClient,
                                                                                  patient: dict):
    enrolled = await _enrolled(api, patient)
    events = f"/patients/{patient['id']}/events"

    wrong_field = await api.post(events, json={"type": "readmitted", "anchor": ANCHOR.isoformat()})
    unknown = await api.post(events, json={"type": "on-holiday"})

    assert wrong_field.status_code == 422
    assert "anchor applies to a discharged event, not readmitted" in wrong_field.text
    assert unknown.status_code == 422 and "type" in unknown.json()["detail"][0]["loc"]
    timeline = (await api.get(f"/enrollments/{enrolled['id']}")).json()["timeline"]
    assert timeline["paused"] is None and timeline["events"] == []
    missing = await api.post("/patients/pt_nothing/events", json={"type": "readmitted"})
    assert (missing.status_code, missing.json()) == (404, {"detail": "patient 'pt_nothing' not found"})
