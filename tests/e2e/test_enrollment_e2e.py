"""From an HTTP request to mail in an inbox, through every real process (see conftest)."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from workflows.contracts import workflow_id_for

pytestmark = pytest.mark.e2e

# Seconds instead of days: the same language, the same workflow, minutes of test time saved.
WELCOME_AND_CHECK_INS = """\
id: e2e-welcome
version: 1
title: End to end
anchor: start
locales: [en]
steps:
  - kind: message
    id: welcome
    at: 1s
    template:
      en:
        subject: "Welcome to {{ pathway.title }}"
        body: "Dear {{ patient.first_name }}, welcome."
  - kind: message
    id: check-in
    at: 2s
    repeat: {every: 2s, times: 3}
    template:
      en:
        subject: "Check-in {{ step.occurrence }}"
        body: "Dear {{ patient.first_name }}, how are you today?"
"""


def now() -> str:
    return datetime.now(UTC).isoformat()


async def test_an_enrollment_sends_each_message_once_and_completes(stack):
    patient = await stack.add_patient(given_name="Zephyrine", family_name="Quillfeather")
    deployed = await stack.deploy(WELCOME_AND_CHECK_INS)
    assert (deployed["id"], deployed["version"]) == ("e2e-welcome", 1)

    response = await stack.http.post("/enrollments", json={
        "patient_id": patient["id"], "pathway_id": "e2e-welcome", "anchor": now()},
        headers={"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 201, response.text
    enrolled = response.json()
    assert enrolled["status"] == "active"
    assert enrolled["workflow_id"] == workflow_id_for(enrolled["id"])
    assert [entry["status"] for entry in enrolled["timeline"]["entries"]] == ["planned"] * 4

    finished = await stack.until_status(enrolled["id"], "completed", timeout=30)

    mail = stack.mail_to(patient["email"])
    assert [m.subject for m in mail] == ["Welcome to End to end", "Check-in 1", "Check-in 2", "Check-in 3"]
    assert len({m.message["Message-ID"] for m in mail}) == 4
    assert mail[0].body.startswith("Dear Zephyrine, welcome.")
    assert [(e["step_id"], e["occurrence"], e["status"]) for e in finished["timeline"]["entries"]] == [
        ("welcome", 1, "sent"), ("check-in", 1, "sent"), ("check-in", 2, "sent"), ("check-in", 3, "sent")]

    refused = await stack.http.post(f"/enrollments/{enrolled['id']}/cancel", json={"reason": "too late"})
    assert (refused.status_code, refused.json()) == (409, {"detail": "the enrollment has already completed"})

    # Names and addresses went into the mail, and nowhere into the logs.
    logs = stack.api.log.read_text(errors="replace") + stack.workers.logs_text()
    for identifying in ("Zephyrine", "Quillfeather", patient["email"]):
        assert identifying not in logs


async def test_repeating_an_enrollment_request_enrolls_once(stack):
    patient = await stack.add_patient()
    await stack.deploy(WELCOME_AND_CHECK_INS.replace("e2e-welcome", "e2e-tomorrow").replace(
        "at: 1s", "at: day 1 +1h").replace("at: 2s", "at: day 2 +1h"))
    request = {"patient_id": patient["id"], "pathway_id": "e2e-tomorrow", "anchor": now()}
    headers = {"Idempotency-Key": str(uuid.uuid4())}

    first = await stack.http.post("/enrollments", json=request, headers=headers)
    again = await stack.http.post("/enrollments", json=request, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["workflow_id"] == first.json()["workflow_id"]

    workflow_id = first.json()["workflow_id"]
    query = f"WorkflowId = '{workflow_id}'"
    for _ in range(50):  # visibility is eventually consistent
        if (await stack.temporal.count_workflows(query)).count:
            break
        await asyncio.sleep(0.1)
    assert [w.id async for w in stack.temporal.list_workflows(query)] == [workflow_id]

    different = await stack.http.post("/enrollments", json=request | {"anchor": "2030-01-01"}, headers=headers)
    assert different.status_code == 409
    assert "already used for a different enrollment" in different.json()["detail"]


async def test_cancelling_stops_what_is_left(stack):
    patient = await stack.add_patient()
    await stack.deploy("""\
id: e2e-cancel
version: 1
title: Cancelled midway
anchor: start
locales: [en]
steps:
  - kind: message
    id: reminder
    at: 1s
    repeat: {every: 3s, times: 5}
    template:
      en: {subject: "Reminder {{ step.occurrence }}", body: "Dear {{ patient.first_name }}"}
""")
    enrolled = (await stack.http.post("/enrollments", json={
        "patient_id": patient["id"], "pathway_id": "e2e-cancel", "anchor": now()})).json()
    # Two of five were sent (at 1s and 4s); the third is not due before 7s. The timeline, not the
    # inbox, says when: a message is in the inbox a moment before its delivery is recorded, and
    # cancelling leaves a delivery in flight to complete.
    await stack.until_sent(enrolled["id"], 2)

    response = await stack.http.post(f"/enrollments/{enrolled['id']}/cancel", json={"reason": "readmitted"})
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert (cancelled["status"], cancelled["status_reason"]) == ("cancelled", "readmitted")
    assert [e["status"] for e in cancelled["timeline"]["entries"]] == ["sent"] * 2 + ["cancelled"] * 3

    await stack.temporal.get_workflow_handle(enrolled["workflow_id"]).result()  # nothing can send any more
    assert [m.subject for m in stack.mail_to(patient["email"])] == ["Reminder 1", "Reminder 2"]
    final = await stack.enrollment(enrolled["id"])
    assert final["status"] == "cancelled" and final["ended_at"] is not None
    assert [e["status"] for e in final["timeline"]["entries"]] == ["sent"] * 2 + ["cancelled"] * 3
    again = await stack.http.post(f"/enrollments/{enrolled['id']}/cancel", json={"reason": "twice"})
    assert (again.status_code, again.json()) == (409, {"detail": "the enrollment is already cancelled"})

