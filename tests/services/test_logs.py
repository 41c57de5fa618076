"""The worker's log lines as JSON: a delivery's line carries its enrollment, and nobody's name or address."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from activities.channels import EmailChannel, SmtpSettings
from activities.delivery import DeliveryActivities
from services.logs import configure_logging
from store.db import Enrollment, Patient, utcnow
from tools.smtp_sink import SmtpSink
from workflows.contracts import MessageDelivery, MessageTemplate, workflow_id_for


class Links:
    def url(self, enrollment_id, step_id, occurrence, expires) -> str:
        return "https://carepath.example/f/unused"


@pytest.fixture
def restores_logging():
    """The process's logging put back as it was, after a test has set it up as the worker does."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    activity.logger.activity_info_on_message = True


async def test_a_delivery_logs_its_enrollment_and_no_patient_details(database, restores_logging, capsys):
    # Here, not in a fixture: capsys replaces stdout only once the test runs, and the handler takes stdout as it is.
    configure_logging()
    async with database.begin() as session:
        session.add(Patient(id="pt_1", given_name="Wei", family_name="Li", email="wei@example.test",
                            phone="+8613800000000", locale="en", timezone="UTC"))
        await session.flush()
        session.add(Enrollment(id="en_7", patient_id="pt_1", pathway_id="p", pathway_version=1, anchor=utcnow(),
                               timezone="UTC", request_fingerprint="x"))
    request = MessageDelivery(enrollment_id="en_7", pathway_id="p", pathway_title="P", step_id="hello", occurrence=1,
                              channel="email", due=utcnow(),
                              templates={"en": MessageTemplate(subject="Hello", body="Dear {{ patient.first_name }}")})
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, workflow_id=workflow_id_for("en_7"),
                                           activity_type="deliver_message")
    with SmtpSink() as inbox:
        email = EmailChannel(SmtpSettings(host="127.0.0.1", port=inbox.port, sender="carepath@example.test"))
        await environment.run(DeliveryActivities(database, {"email": email}, Links()).deliver_message, request)
        [mail] = inbox.messages
    assert "Wei" in mail.body  # the message itself is addressed to the patient...

    # The SMTP sink stands in for the hospital's mail server, and logs like one ("mail.log"): it runs in
    # this process only here.
    lines = [line for line in map(json.loads, capsys.readouterr().out.splitlines()) if line["logger"] != "mail.log"]
    [sent] = [line for line in lines if line["message"].startswith("sent hello")]
    assert sent["message"] == "sent hello occurrence 1 (scheduled) by email"
    assert (sent["enrollment_id"], sent["workflow_id"], sent["activity_type"], sent["level"]) == (
        "en_7", "enrollment-en_7", "deliver_message", "INFO")
    # ...and the log, whichever line, names neither the patient nor where the message went.
    output = json.dumps(lines)
    for detail in ("Wei", '"Li"', "wei@example.test", "+8613800000000"):
        assert detail not in output
