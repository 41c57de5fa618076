"""The worklist, escalation actions and call outcomes, against the real workflows (see conftest).

Each test enrolls its own patient in a pathway whose questionnaire and calls fall due seconds after
enrollment; the worker runs the PathwayWorkflow and its EscalationWorkflow children for real.
"""

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from services.principals import Role
from tests.api.accounts import Accounts
from workflows.contracts import CallOutcome, escalation_workflow_id, workflow_id_for
from workflows.pathway import PathwayWorkflow

T = TypeVar("T")

PATHWAY = """\
id: api-escalation
version: 1
title: Escalations and calls through the API
anchor: start
locales: [en, zh-CN]
parameters:
  phq9_referral_score: {value: 10, source: "Kroenke, Spitzer & Williams 2001: PHQ-9 >= 10 moderate depression"}
  systolic_mmhg: {value: 140, source: "NICE NG133: clinic blood pressure 140/90 mmHg or more"}
escalation_policies:
  mood:
    priority: high
    tiers:
      - {notify: midwives, ack_within: 10m}
      - {notify: obstetrics-on-call}
  blood-pressure:
    priority: urgent
    tiers:
      - {notify: follow-up-nurses}
steps:
  # A call stands in for the questionnaire: no patient mailbox is needed.
  - kind: call
    id: mood-call
    at: 2s
    team: midwives
    instrument: phq9-by-phone
    script: {en: "Ask the PHQ-9 questions.", zh-CN: "请询问 PHQ-9 问题。"}
    on:
      - when: phq9 >= phq9_referral_score
        escalate: {policy: mood, reason: "PHQ-9 10 or more"}
  - kind: call
    id: bp-check
    at: 2s
    team: follow-up-nurses
    instrument: blood-pressure
    script: {en: "Ask for today's blood pressure.", zh-CN: "请询问今天的血压。"}
    retry: {every: 1h, times: 2}
    on:
      - when: systolic >= systolic_mmhg
        escalate: {policy: blood-pressure, reason: "Systolic 140 or more"}
  - kind: call
    id: feeding-check
    at: 3s
    team: follow-up-nurses
    script: {en: "Ask how feeding is going.", zh-CN: "请询问喂养情况。"}
"""
TEAMS = ("midwives", "obstetrics-on-call", "follow-up-nurses", "surgical-ward")


async def until(check: Callable[[], Awaitable[T]], what: str, timeout: float = 20) -> T:
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)
    return result


@pytest.fixture(scope="module")
async def site(api: httpx.AsyncClient) -> None:
    """The teams the pathway names (this test database has no roster file), and the pathway."""
    for team in TEAMS:
        response = await api.post("/teams", json={"id": team, "name": team.title(), "email": f"{team}@api.test"})
        assert response.status_code in (201, 409), response.text
    response = await api.post("/pathways", content=PATHWAY.encode(), headers={"Content-Type": "application/yaml"})
    assert response.status_code in (200, 201), response.text


@pytest.fixture
async def enrollment_id(api: httpx.AsyncClient, site, patient: dict) -> str:
    response = await api.post("/enrollments", json={
        "patient_id": patient["id"], "pathway_id": "api-escalation", "anchor": datetime.now(UTC).isoformat()},
        headers={"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 201, response.text
    return response.json()["id"]


@dataclass(frozen=True)
class Staff:
    id: str
    http: httpx.AsyncClient


async def add_staff(accounts: Accounts, team: str) -> Staff:
    """A clinician of `team`, signed in: the acting staff member is whoever the credentials say."""
    return Staff(*await accounts.staff([Role.CLINICIAN], [team], name="Wang Fang"))


async def worklist(api: httpx.AsyncClient, enrollment_id: str, **filters) -> list[dict]:
    response = await api.get("/worklist", params=filters)
    assert response.status_code == 200, response.text
    return [item for item in response.json() if item["enrollment_id"] == enrollment_id]


async def open_task(api: httpx.AsyncClient, enrollment_id: str, step_id: str, team: str = "follow-up-nurses") -> dict:
    async def listed() -> dict | None:
        tasks = (await api.get("/tasks", params={"team": team})).json()
        return next((t for t in tasks if t["enrollment_id"] == enrollment_id and t["step_id"] == step_id), None)

    return await until(listed, f"call task {step_id} of {enrollment_id}")


async def answer_phq9(api: httpx.AsyncClient, accounts: Accounts, enrollment_id: str) -> None:
    """A midwife phones, takes a PHQ-9 with total 15 and records it: the pathway escalates."""
    task = await open_task(api, enrollment_id, "mood-call", team="midwives")
    midwife = await add_staff(accounts, "midwives")
    response = await midwife.http.post(f"/tasks/{task['id']}/outcome", json={"outcome": "reached", "values": {"phq9": 15}})
    assert response.status_code == 200, response.text


async def escalated(api: httpx.AsyncClient, enrollment_id: str, team: str, priority: str = "high") -> dict:
    """The escalation on `team`'s worklist, once the workflow has told that team."""
    async def on_the_list() -> dict | None:
        items = await worklist(api, enrollment_id, team=team)
        return next((i for i in items if i["kind"] == "escalation" and i["priority"] == priority), None)

    return await until(on_the_list, f"a {priority} escalation of {enrollment_id} on the {team} worklist")


async def history_text(temporal: WorkflowEnvironment, workflow_id: str) -> str:
    return (await temporal.client.get_workflow_handle(workflow_id).fetch_history()).to_json()


async def test_an_escalation_is_on_the_worklist_of_the_team_told(api: httpx.AsyncClient, accounts: Accounts, enrollment_id: str,
                                                                  inbox):
    await answer_phq9(api, accounts, enrollment_id)
    item = await escalated(api, enrollment_id, "midwives")

    assert item == {
        "kind": "escalation", "id": item["id"], "priority": "high", "due": item["due"], "status": "open",
        "team": "midwives", "reason": "PHQ-9 10 or more", "script": None, "enrollment_id": enrollment_id,
        "step_id": "mood-call", "occurrence": 1, "tier": 1, "attempt": None, "notification_failures": [],
        "link": f"/enrollments/{enrollment_id}", "href": f"/escalations/{item['id']}",
    }
    assert await worklist(api, enrollment_id, team="surgical-ward") == []
    assert [i["kind"] for i in await worklist(api, enrollment_id, team="midwives", priority="urgent")] == []
    assert [i["kind"] for i in await worklist(api, enrollment_id, team="midwives", status="acknowledged")] == []
    told = [mail for mail in inbox.messages if "midwives@api.test" in mail.recipients and enrollment_id in mail.body]
    assert len(told) == 1 and "PHQ-9 10 or more" in told[0].subject

    unknown = await api.get("/worklist", params={"team": "no-such-team"})
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "team 'no-such-team' not found"})
    assert (await api.get("/worklist", params={"priority": "soon"})).status_code == 422


async def test_the_worklist_is_sorted_by_priority_then_due_time(api: httpx.AsyncClient, accounts: Accounts, enrollment_id: str):
    await answer_phq9(api, accounts, enrollment_id)
    escalation = await escalated(api, enrollment_id, "midwives")
    bp_check = await open_task(api, enrollment_id, "bp-check")
    await open_task(api, enrollment_id, "feeding-check")

    items = await worklist(api, enrollment_id)
    assert [(i["kind"], i["priority"], i["step_id"]) for i in items] == [
        ("escalation", "high", "mood-call"), ("call", "routine", "bp-check"), ("call", "routine", "feeding-check")]
    assert items[1]["due"] < items[2]["due"] and items[1]["id"] == str(bp_check["id"])
    assert items[1]["script"] == "请询问今天的血压。" and items[1]["reason"] is None  # in the patient's language

    staff = await add_staff(accounts, "follow-up-nurses")
    recorded = await staff.http.post(f"/tasks/{bp_check['id']}/outcome",
                              json={"outcome": "reached", "values": {"systolic": 150}})
    assert recorded.status_code == 200, recorded.text
    await escalated(api, enrollment_id, "follow-up-nurses", priority="urgent")
    assert [(i["kind"], i["priority"], i["step_id"]) for i in await worklist(api, enrollment_id)] == [
        ("escalation", "urgent", "bp-check"), ("escalation", "high", "mood-call"), ("call", "routine", "feeding-check")]
    assert [i["id"] for i in await worklist(api, enrollment_id, priority="high")] == [escalation["id"]]


async def test_acknowledge_then_resolve_with_an_outcome(api: httpx.AsyncClient, accounts: Accounts, enrollment_id: str,
                                                       temporal: WorkflowEnvironment):
    await answer_phq9(api, accounts, enrollment_id)
    escalation_id = (await escalated(api, enrollment_id, "midwives"))["id"]
    midwife, surgical_nurse = await add_staff(accounts, "midwives"), await add_staff(accounts, "surgical-ward")
    url = f"/escalations/{escalation_id}"

    nowhere = await midwife.http.post("/escalations/no-such-escalation/acknowledge")
    assert (nowhere.status_code, nowhere.json()) == (404, {"detail": "escalation 'no-such-escalation' not found"})
    for action, extra in (("acknowledge", {}), ("resolve", {"outcome": "Not ours to resolve"})):
        stranger = await surgical_nurse.http.post(f"{url}/{action}", json=extra)
        # Not theirs to see: the surgical ward is not involved in this enrollment at all.
        assert (stranger.status_code, stranger.json()) == (
            404, {"detail": f"escalation '{escalation_id}' not found"})
    assert (await api.get(url)).json()["outcome_note"] is None

    acknowledged = await midwife.http.post(f"{url}/acknowledge")
    assert acknowledged.status_code == 200, acknowledged.text
    detail = acknowledged.json()
    assert (detail["status"], detail["acknowledged_by"], detail["state"]["status"]) == (
        "acknowledged", midwife.id, "acknowledged")
    assert [(line["action"], line["actor"], line["team"], line["tier"]) for line in detail["audit"]] == [
        ("opened", "system", None, None), ("notified", "system", "midwives", 1),
        ("acknowledged", midwife.id, "midwives", None)]
    assert detail["audit"][-1]["at"] == detail["acknowledged_at"]

    again = await midwife.http.post(f"{url}/acknowledge")
    assert (again.status_code, again.json()) == (409, {"detail": f"escalation {escalation_id} is already acknowledged"})
    assert [i["id"] for i in await worklist(api, enrollment_id, team="midwives", status="acknowledged")] == [escalation_id]
    assert await worklist(api, enrollment_id, team="midwives", status="open") == []

    for body in ({}, {"outcome": "   "}):
        assert (await midwife.http.post(f"{url}/resolve", json=body)).status_code == 422
    note = f"Phoned the patient; GP appointment booked ({uuid.uuid4().hex[:6]})."
    resolved = await midwife.http.post(f"{url}/resolve", json={"outcome": note})
    assert resolved.status_code == 200, resolved.text
    detail = resolved.json()
    assert (detail["status"], detail["resolved_by"], detail["outcome_note"]) == ("resolved", midwife.id, note)
    assert detail["audit"][-1]["action"] == "resolved" and detail["audit"][-1]["actor"] == midwife.id

    read = (await api.get(url)).json()
    assert read == detail | {"state": read["state"]} and read["state"]["status"] == "resolved"
    assert await worklist(api, enrollment_id, team="midwives") == []
    for action, body in (("resolve", {"outcome": "again"}), ("acknowledge", None)):
        refused = await midwife.http.post(f"{url}/{action}", json=body)
        assert (refused.status_code, refused.json()) == (409, {"detail": f"escalation {escalation_id} is already resolved"})
    assert (await api.get(url)).json()["outcome_note"] == note
    # The note is the resolver's words: the database has them, the workflow's history never does.
    assert note not in await history_text(temporal, escalation_workflow_id(escalation_id))


async def test_a_channel_that_failed_shows_on_the_worklist_and_the_escalation(api: httpx.AsyncClient, accounts: Accounts,
                                                                               enrollment_id: str):
    refusing = ThreadingHTTPServer(("127.0.0.1", 0), _Gone)
    threading.Thread(target=refusing.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{refusing.server_address[1]}/hooks/midwives"
    assert (await api.patch("/teams/midwives", json={"webhook": hook})).status_code == 200
    try:
        await answer_phq9(api, accounts, enrollment_id)
        escalation_id = (await escalated(api, enrollment_id, "midwives"))["id"]

        async def failed() -> list[dict]:
            return (await api.get(f"/escalations/{escalation_id}")).json()["notification_failures"]

        [failure] = await until(failed, "the webhook's failure on the escalation")
    finally:
        assert (await api.patch("/teams/midwives", json={"webhook": None})).status_code == 200
        refusing.shutdown()
        refusing.server_close()
    assert (failure["team"], failure["tier"], failure["channel"], failure["error"]) == (
        "midwives", 1, "webhook", "WebhookStatus410")
    [item] = await worklist(api, enrollment_id, team="midwives")
    assert item["notification_failures"] == [failure] and item["tier"] == 1  # the email got through
    audit = (await api.get(f"/escalations/{escalation_id}")).json()["audit"]
    assert [line["detail"] for line in audit if line["action"] == "notify_failed"] == ["webhook: WebhookStatus410"]


class _Gone(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(410)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


async def test_reassigning_hands_the_escalation_to_another_team(api: httpx.AsyncClient, accounts: Accounts, enrollment_id: str):
    await answer_phq9(api, accounts, enrollment_id)
    escalation_id = (await escalated(api, enrollment_id, "midwives"))["id"]
    midwife, obstetrician = await add_staff(accounts, "midwives"), await add_staff(accounts, "obstetrics-on-call")
    url = f"/escalations/{escalation_id}"

    unknown = await midwife.http.post(f"{url}/reassign", json={"to_team": "no-such-team"})
    assert (unknown.status_code, unknown.json()) == (
        422, {"detail": "no team 'no-such-team'; see GET /teams, or add it with POST /teams"})
    early = await obstetrician.http.post(f"{url}/acknowledge")
    assert early.status_code == 409  # not told yet: the first tier has ten minutes

    reassigned = await midwife.http.post(f"{url}/reassign", json={"to_team": "obstetrics-on-call"})
    assert reassigned.status_code == 200, reassigned.text
    detail = reassigned.json()
    assert detail["team"] == "obstetrics-on-call" and detail["status"] == "open"
    assert [(line["action"], line["actor"], line["team"]) for line in detail["audit"][-2:]] == [
        ("reassigned", midwife.id, "obstetrics-on-call"), ("notified", "system", "obstetrics-on-call")]

    assert [i["id"] for i in await worklist(api, enrollment_id, team="obstetrics-on-call")] == [escalation_id]
    assert await worklist(api, enrollment_id, team="midwives") == []
    taken = await obstetrician.http.post(f"{url}/acknowledge")
    assert taken.status_code == 200 and taken.json()["acknowledged_by"] == obstetrician.id


async def test_a_call_outcome_reaches_the_pathway_and_the_notes_stay_with_the_task(
        api: httpx.AsyncClient, accounts: Accounts, enrollment_id: str, temporal: WorkflowEnvironment):
    task = await open_task(api, enrollment_id, "bp-check")
    assert {key: task[key] for key in ("status", "attempt", "team", "script", "outcome", "notes", "link")} == {
        "status": "open", "attempt": 1, "team": "follow-up-nurses", "script": "请询问今天的血压。", "outcome": None,
        "notes": None, "link": f"/enrollments/{enrollment_id}"}
    nurse = await add_staff(accounts, "follow-up-nurses")
    url = f"/tasks/{task['id']}/outcome"

    for body, field in (({"outcome": "not_reached", "values": {"systolic": 150}}, "values can only be recorded"),
                        ({"outcome": "reached", "values": {"systolic": "about 150, she said"}}, "systolic"),
                        ({"outcome": "reached", "values": {"systolic": 400}}, "enter a number from 50 to 260"),
                        ({"outcome": "reached", "values": {"sistolic": 150}}, "not a question of this form"),
                        ({"outcome": "maybe"}, "outcome")):
        invalid = await nurse.http.post(url, json=body)
        assert invalid.status_code == 422 and field in invalid.text, invalid.text
    assert (await nurse.http.post("/tasks/ct_no_such_task/outcome", json={"outcome": "reached"})).status_code == 404

    notes = f"Patient dizzy this morning, husband present ({uuid.uuid4().hex[:6]})"
    recorded = await nurse.http.post(url, json={"outcome": "reached", "notes": notes,
                                         "values": {"systolic": 150, "warning_symptoms": True}})
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["rules"]["escalations"] == ["Systolic 140 or more"]
    stored = recorded.json()["task"]
    assert {key: stored[key] for key in ("status", "outcome", "notes", "values", "recorded_by")} == {
        "status": "done", "outcome": "reached", "notes": notes, "values": {"systolic": 150, "warning_symptoms": True},
        "recorded_by": nurse.id}
    assert stored["recorded_at"] is not None
    assert (await api.get(f"/tasks/{task['id']}")).json() == stored

    again = await nurse.http.post(url, json={"outcome": "reached"})
    assert (again.status_code, again.json()) == (
        409, {"detail": f"call task {task['id']} is done, not waiting for an outcome"})
    assert all(t["id"] != task["id"] for t in (await api.get("/tasks")).json())
    timeline = (await api.get(f"/enrollments/{enrollment_id}")).json()["timeline"]
    assert next(e for e in timeline["entries"] if e["step_id"] == "bp-check")["status"] == "reached"
    assert notes not in await history_text(temporal, workflow_id_for(enrollment_id))


async def test_a_call_without_a_form_takes_no_values(api: httpx.AsyncClient, accounts: Accounts, enrollment_id: str):
    task = await open_task(api, enrollment_id, "feeding-check")
    nurse = await add_staff(accounts, "follow-up-nurses")

    refused = await nurse.http.post(f"/tasks/{task['id']}/outcome",
                             json={"outcome": "reached", "values": {"feeding_ok": True}})

    assert (refused.status_code, refused.json()) == (422, {
        "detail": "call step feeding-check has no form to record values on; put what was said in notes"})
    assert (await api.get(f"/tasks/{task['id']}")).json() == task


async def test_not_reached_is_recorded_and_the_pathway_tries_again(api: httpx.AsyncClient, accounts: Accounts, enrollment_id: str):
    task = await open_task(api, enrollment_id, "bp-check")
    nurse = await add_staff(accounts, "follow-up-nurses")

    recorded = await nurse.http.post(f"/tasks/{task['id']}/outcome", json={"outcome": "not_reached"})

    assert recorded.status_code == 200, recorded.text
    assert (recorded.json()["task"]["outcome"], recorded.json()["task"]["values"]) == ("not_reached", None)
    timeline = (await api.get(f"/enrollments/{enrollment_id}")).json()["timeline"]
    entry = next(e for e in timeline["entries"] if e["step_id"] == "bp-check")
    assert (entry["status"], entry["attempts"]) == ("planned", 1)  # the second attempt, an hour later


async def test_a_refused_outcome_leaves_the_task_as_it_was(api: httpx.AsyncClient, accounts: Accounts, enrollment_id: str,
                                                          temporal: WorkflowEnvironment):
    task = await open_task(api, enrollment_id, "bp-check")
    nurse = await add_staff(accounts, "follow-up-nurses")
    # Someone else's outcome reached the workflow first, by another route than this task's row.
    handle = temporal.client.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(enrollment_id))
    await handle.execute_update(PathwayWorkflow.record_call_outcome,
                                CallOutcome(step_id="bp-check", occurrence=1, outcome="reached", staff_id=nurse.id))

    refused = await nurse.http.post(f"/tasks/{task['id']}/outcome",
                             json={"outcome": "reached", "notes": "BP fine", "values": {"systolic": 120}})

    assert (refused.status_code, refused.json()) == (
        409, {"detail": "call bp-check #1 is reached, not waiting for an outcome"})
    assert (await api.get(f"/tasks/{task['id']}")).json() == task


async def test_unknown_escalations_and_tasks_are_404(api: httpx.AsyncClient):
    escalation = await api.get("/escalations/no-such-escalation")
    assert (escalation.status_code, escalation.json()) == (404, {"detail": "escalation 'no-such-escalation' not found"})
    task = await api.get("/tasks/ct_no_such_task")
    assert (task.status_code, task.json()) == (404, {"detail": "call task ct_no_such_task not found"})
    team = await api.get("/tasks", params={"team": "no-such-team"})
    assert (team.status_code, team.json()) == (404, {"detail": "team 'no-such-team' not found"})
