"""An escalation through every real process: the patient's answers, the team's inbox, the worklist,
a midwife acknowledging and resolving it through the API, and the audit trail that records it.

The stack's teams come from the shipped roster, pathways/site/teams.yaml, loaded by the API at start.
"""

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime

import pytest

from workflows.contracts import escalation_workflow_id

pytestmark = pytest.mark.e2e

PATHWAY = """\
id: e2e-escalation
version: 1
title: Mood follow-up with escalation
anchor: start
locales: [en]
parameters:
  phq9_referral_score: {value: 10, source: "Kroenke, Spitzer & Williams 2001: PHQ-9 >= 10 moderate depression"}
escalation_policies:
  mood:
    priority: high
    tiers:
      - {notify: midwives, ack_within: 10m}
      - {notify: obstetrics-on-call}
steps:
  - kind: questionnaire
    id: phq9
    instrument: phq-9
    at: 1s
    expire: 10m
    template:
      en: {subject: "How have you been feeling?", body: "Please answer here: {{ link }}"}
    on:
      - when: score >= phq9_referral_score
        escalate: {policy: mood, reason: "PHQ-9 10 or more"}
"""
MIDWIVES = "midwives@carepath.localhost"  # pathways/site/teams.yaml
FREQUENCY = ["not_at_all", "several_days", "more_than_half_the_days", "nearly_every_day"]
ANSWERS = {f"q{n}": FREQUENCY[v] for n, v in enumerate((2, 2, 2, 2, 2, 2, 2, 1, 0), start=1)}  # total 15, q9 0
LINK = re.compile(r"http://[^\s]+/f/[A-Za-z0-9_.\-]+")


async def until(check, what: str, stack, timeout: float = 20):
    """Poll `check` (sync or async) until it gives something truthy; fail naming `what` or a dead API."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if stack.api.process.poll() is not None:
            pytest.fail(f"the API exited while waiting for {what}:\n{stack.api.log.read_text(errors='replace')[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; worker log:\n"
                        f"{stack.workers.logs_text()[-4000:]}")
        await asyncio.sleep(0.2)


async def test_a_phq9_of_15_reaches_the_midwives_who_acknowledge_and_resolve_it(stack):
    await stack.deploy(PATHWAY)
    marker = uuid.uuid4().hex[:8]
    patient = await stack.add_patient(given_name=f"Philippa{marker}", family_name=f"Quennell{marker}")
    enrolled = await stack.http.post("/enrollments", json={
        "patient_id": patient["id"], "pathway_id": "e2e-escalation", "anchor": datetime.now(UTC).isoformat()},
        headers={"Idempotency-Key": str(uuid.uuid4())})
    assert enrolled.status_code == 201, enrolled.text
    enrollment_id = enrolled.json()["id"]

    # The patient answers through the emailed link.
    [invitation] = await stack.until_mail(patient["email"], 1)
    link = LINK.search(invitation.body).group(0)
    thanks = await stack.http.post(link[link.index("/f/"):], data=ANSWERS)
    assert thanks.status_code == 200 and "Thank you" in thanks.text

    # The midwives' shared mailbox is told: the reason, the priority, a link; nothing the patient is or wrote.
    [told] = await until(lambda: [mail for mail in stack.mail_to(MIDWIVES) if enrollment_id in mail.body],
                         "the midwives to be told", stack)
    text = f"{told.subject}\n{told.body}"
    assert "PHQ-9 10 or more" in told.subject and "high" in told.subject.lower()
    assert "Priority: high" in told.body and f"/enrollments/{enrollment_id}" in told.body
    for private in (patient["given_name"], patient["family_name"], patient["email"], *ANSWERS.values(),
                    "Little interest or pleasure"):
        assert private not in text, private

    # On the midwives' worklist, with the pathway's words only.
    async def on_the_worklist() -> dict | None:
        items = (await stack.http.get("/worklist", params={"team": "midwives"})).json()
        return next((item for item in items if item["enrollment_id"] == enrollment_id), None)

    item = await until(on_the_worklist, "the escalation on the midwives' worklist", stack)
    assert (item["kind"], item["priority"], item["status"], item["reason"], item["link"]) == (
        "escalation", "high", "open", "PHQ-9 10 or more", f"/enrollments/{enrollment_id}")
    escalation_id = item["id"]

    # A midwife acknowledges; the audit trail names her, with the time.
    midwife, as_midwife = await stack.staff(["clinician"], ["midwives"])
    acknowledged = await as_midwife.post(f"/escalations/{escalation_id}/acknowledge")
    assert acknowledged.status_code == 200, acknowledged.text

    detail = (await stack.http.get(f"/escalations/{escalation_id}")).json()
    assert (detail["status"], detail["acknowledged_by"]) == ("acknowledged", midwife)
    [line] = [line for line in detail["audit"] if line["action"] == "acknowledged"]
    assert (line["actor"], line["team"]) == (midwife, "midwives")
    assert datetime.fromisoformat(line["at"]) >= datetime.fromisoformat(item["due"])
    assert detail["state"]["status"] == "acknowledged"

    again = await as_midwife.post(f"/escalations/{escalation_id}/acknowledge")
    assert (again.status_code, again.json()) == (409, {"detail": f"escalation {escalation_id} is already acknowledged"})

    # Resolved with what was done: the note is stored, and only in the database.
    note = f"Phoned the patient; GP appointment tomorrow ({marker})."
    resolved = await as_midwife.post(f"/escalations/{escalation_id}/resolve", json={"outcome": note})
    assert resolved.status_code == 200, resolved.text
    detail = (await stack.http.get(f"/escalations/{escalation_id}")).json()
    assert (detail["status"], detail["resolved_by"], detail["outcome_note"]) == ("resolved", midwife, note)
    assert [line["action"] for line in detail["audit"]][-1] == "resolved"
    assert await on_the_worklist() is None
    history = await stack.temporal.get_workflow_handle(escalation_workflow_id(escalation_id)).fetch_history()
    assert note not in history.to_json()
