"""A worker dies mid-pathway without warning; another takes over; every message goes out once."""

import asyncio
import signal
import time
import uuid
from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.e2e

EIGHT_REMINDERS = """\
id: e2e-crash
version: 1
title: Survives a crash
anchor: start
locales: [en]
steps:
  - kind: message
    id: reminder
    at: 2s
    repeat: {every: 2s, times: 8}
    template:
      en: {subject: "Reminder {{ step.occurrence }} of 8", body: "Dear {{ patient.first_name }}"}
"""


async def test_a_killed_worker_loses_and_repeats_nothing(stack):
    patient = await stack.add_patient()
    await stack.deploy(EIGHT_REMINDERS)
    started = time.monotonic()
    response = await stack.http.post("/enrollments", json={
        "patient_id": patient["id"], "pathway_id": "e2e-crash", "anchor": datetime.now(UTC).isoformat()},
        headers={"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 201, response.text
    enrollment_id = response.json()["id"]

    await stack.until_mail(patient["email"], 3)
    # Halfway between two reminders, so that the worker dies holding timers and workflow state
    # rather than a half-sent message (which would wait out the 30 s delivery attempt timeout).
    await asyncio.sleep(1)
    assert stack.workers.kill() == -signal.SIGKILL
    arrived = len(stack.mail_to(patient["email"]))
    # No worker: what falls due meanwhile waits in Temporal, and nothing is sent.
    await asyncio.sleep(3)
    assert len(stack.mail_to(patient["email"])) == arrived < 8

    await stack.workers.start()
    finished = await stack.until_status(enrollment_id, "completed", timeout=60)

    mail = stack.mail_to(patient["email"])
    message_ids = [m.message["Message-ID"] for m in mail]
    assert len(mail) == 8
    assert len(set(message_ids)) == 8
    assert sorted(m.subject for m in mail) == sorted(f"Reminder {n} of 8" for n in range(1, 9))
    assert [e["status"] for e in finished["timeline"]["entries"]] == ["sent"] * 8
    assert time.monotonic() - started < 60
