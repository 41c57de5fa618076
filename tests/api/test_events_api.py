"""POST /enrollments/{id}/events: a hospital system sends a lab result into a running enrollment, against
the real workflow and worker (see conftest), on each kind of database."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from services.principals import Role
from tests.workflows.test_history_has_no_phi import histories
from workflows.contracts import workflow_id_for

PATHWAY = """\
id: api-events
version: 1
title: API events
anchor: delivery_date
locales: [en]
parameters:
  hb_threshold_g_dl: {value: 10, source: "Postpartum anaemia: Hb below 10 g/dL (local protocol)"}
events:
  lab-result:
    fields:
      hb_g_dl: {type: number, min: 3, max: 25}
      test: {type: code, codes: [hb, full_blood_count]}
      comment: {type: text, required: false}
on_event:
  - event: lab-result
    when: hb_g_dl < hb_threshold_g_dl
    tag: anaemia
    call: anaemia-call
steps:
  - kind: message
    id: day-30
    at: day 30 10:00
    template:
      en: {subject: "Day 30", body: "Dear {{ patient.first_name }}, how are you?"}
  - kind: call
    id: anaemia-call
    team: follow-up-nurses
    script: {en: "Explain the blood result and book iron treatment."}
"""
TAKEN = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
LOW_HB = {"type": "lab-result", "values": {"hb_g_dl": 8.4, "test": "hb", "comment": "repeat in a week"},
          "occurred_at": TAKEN}


@pytest.fixture(scope="module")
async def site(api: httpx.AsyncClient) -> None:
    response = await api.post("/teams", json={"id": "follow-up-nurses", "name": "Follow-up nurses",
                                              "email": "follow-up-nurses@api.test"})
    assert response.status_code in (201, 409), response.text
    response = await api.post("/pathways", content=PATHWAY.encode(), headers={"Content-Type": "application/yaml"})
    assert response.status_code in (200, 201), response.text


@pytest.fixture
async def enrollment_id(api: httpx.AsyncClient, site, patient: dict) -> str:
    response = await api.post("/enrollments", json={
        "patient_id": patient["id"], "pathway_id": "api-events", "anchor": datetime.now(UTC).date().isoformat()},
        headers={"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def key() -> dict:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def _event_entries(api: httpx.AsyncClient, enrollment_id: str) -> list[tuple[str, int, str]]:
    timeline = (await api.get(f"/enrollments/{enrollment_id}")).json()["timeline"]
    return [(e["step_id"], e["occurrence"], e["status"]) for e in timeline["entries"] if e["kind"] == "event"]


async def test_a_hospital_system_sends_a_low_haemoglobin_and_the_rule_acts(as_role, api: httpx.AsyncClient,
                                                                          enrollment_id: str, patient: dict,
                                                                          temporal: WorkflowEnvironment):
    hospital = await as_role(Role.INTEGRATION)

    response = await hospital.post(f"/enrollments/{enrollment_id}/events", json=LOW_HB, headers=key())

    assert response.status_code == 201, response.text
    sent = response.json()
    assert (sent["outcome"]["tags"], sent["outcome"]["calls"]) == (["anaemia"], ["anaemia-call"])
    assert sent["values"] == LOW_HB["values"], "every value and the note are stored"
    assert datetime.fromisoformat(sent["occurred_at"]) == datetime.fromisoformat(TAKEN)
    assert (await hospital.get(f"/enrollments/{enrollment_id}/events")).json() == [sent]
    enrolled = (await api.get(f"/enrollments/{enrollment_id}")).json()
    assert enrolled["timeline"]["tags"] == ["anaemia"]
    assert await _event_entries(api, enrollment_id) == [("lab-result", 1, "received")]
    log = (await api.get(f"/patients/{patient['id']}/access-log")).json()
    assert {"enrollment.event", "enrollment.events"} <= {line["action"] for line in log}
    raw, decoded = await histories(temporal.client, workflow_id_for(enrollment_id))
    assert b"8.4" in decoded, "the value the rule compares is in the workflow's history"
    assert b"repeat in a week" not in raw + decoded, "the note stays in the database"


async def test_the_same_idempotency_key_sends_the_event_once(api: httpx.AsyncClient, enrollment_id: str):
    headers = key()
    first = await api.post(f"/enrollments/{enrollment_id}/events", json=LOW_HB, headers=headers)
    again = await api.post(f"/enrollments/{enrollment_id}/events", json=LOW_HB, headers=headers)
    other = await api.post(f"/enrollments/{enrollment_id}/events", headers=headers,
                           json=LOW_HB | {"values": {"hb_g_dl": 12.1, "test": "hb"}})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert (other.status_code, other.json()) == (409, {"detail": "this Idempotency-Key was used for another event"})
    assert await _event_entries(api, enrollment_id) == [("lab-result", 1, "received")]


async def test_the_same_event_sent_twice_at_once_is_recorded_once(api: httpx.AsyncClient, enrollment_id: str):
    headers = key()
    sent = await asyncio.gather(*(api.post(f"/enrollments/{enrollment_id}/events", json=LOW_HB, headers=headers)
                                  for _ in range(2)))

    assert {response.status_code for response in sent} <= {200, 201}, [response.text for response in sent]
    assert sent[0].json() == sent[1].json()
    assert len((await api.get(f"/enrollments/{enrollment_id}/events")).json()) == 1
    assert await _event_entries(api, enrollment_id) == [("lab-result", 1, "received")]


@pytest.mark.parametrize(("event", "detail"), [
    (LOW_HB | {"values": {"hb_g_dl": "low", "tests": "hb"}},
     {"message": "the lab-result event does not fit its declaration",
      "errors": {"tests": "not a field of this event; did you mean 'test'?",
                 "hb_g_dl": "expected a number, not 'low'", "test": "required"}}),
    (LOW_HB | {"type": "bp-reading"},
     "pathway api-events v1 takes no event 'bp-reading' (it takes: lab-result)"),
    (LOW_HB | {"occurred_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
     {"message": "the event has not happened yet", "errors": {"occurred_at": "in the future"}}),
])
async def test_an_event_that_does_not_fit_is_refused_naming_the_field_and_changes_nothing(
        api: httpx.AsyncClient, enrollment_id: str, event: dict, detail):
    response = await api.post(f"/enrollments/{enrollment_id}/events", json=event, headers=key())

    assert (response.status_code, response.json()) == (422, {"detail": detail})
    assert (await api.get(f"/enrollments/{enrollment_id}/events")).json() == []
    assert await _event_entries(api, enrollment_id) == []


async def test_a_cancelled_enrollment_takes_no_events(api: httpx.AsyncClient, enrollment_id: str):
    cancelled = await api.post(f"/enrollments/{enrollment_id}/cancel", json={"reason": "moved away"})
    assert cancelled.status_code == 200, cancelled.text

    response = await api.post(f"/enrollments/{enrollment_id}/events", json=LOW_HB, headers=key())

    # Refused by the workflow's validator, or, once the run has closed, by the API in its place.
    assert response.status_code == 409 and response.json()["detail"] in (
        "the enrollment is cancelled; it takes no more events",
        f"the enrollment {enrollment_id} has ended; it takes no more events")
    assert (await api.get(f"/enrollments/{enrollment_id}/events")).json() == []
