"""A delivery that names its template (pathway version, step, which text) instead of carrying every
locale's text: the activity reads it from the deployed version. Real database and SMTP sink."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.channels import EmailChannel, SmtpSettings
from activities.delivery import DeliveryActivities
from services.registry import PathwayRegistry
from store.db import Enrollment, Patient, utcnow
from tools.smtp_sink import SmtpSink
from workflows.contracts import MessageDelivery

VERSION_1 = """\
id: reference-check
version: 1
title: Reference check
anchor: discharge_date
locales: [en, zh-CN]
steps:
  - kind: message
    id: hello
    at: day 1 10:00
    template:
      en: {subject: "Hello v1", body: "Dear {{ patient.first_name }}"}
      zh-CN: {subject: "您好 v1", body: "{{ patient.first_name }}，您好"}
"""
VERSION_2 = VERSION_1.replace("version: 1", "version: 2").replace(" v1", " v2")
# No channel of its own: its title and its `reach` (inputs without them) come from this version.
VERSION_3 = VERSION_1.replace("version: 1", "version: 3\nreach:\n  channels: {zh-CN: [email]}").replace(
    '"您好 v1"', '"{{ pathway.title }} v3"')


class Links:
    def url(self, enrollment_id, step_id, occurrence, expires) -> str:
        return "https://carepath.example/f/unused"


@pytest.fixture
async def delivery(database):
    sessions = database
    registry = PathwayRegistry(sessions, {})
    for number, source in enumerate([VERSION_1, VERSION_2, VERSION_3], start=1):
        await registry.deploy(source, f"v{number}.yaml")
    async with sessions.begin() as session:
        session.add(Patient(id="pt_1", given_name="Wei", family_name="Li", email="wei@example.test", locale="zh-CN",
                            timezone="Asia/Shanghai"))
        await session.flush()
        session.add(Enrollment(id="en_1", patient_id="pt_1", pathway_id="reference-check", pathway_version=1,
                               anchor=utcnow(), timezone="Asia/Shanghai", request_fingerprint="x"))
    with SmtpSink() as inbox:
        email = EmailChannel(SmtpSettings(host="127.0.0.1", port=inbox.port, sender="carepath@example.test"))
        yield DeliveryActivities(sessions, {"email": email}, Links(), pathways=registry), inbox


def reference(version: int, occurrence: int = 1) -> MessageDelivery:
    return MessageDelivery(enrollment_id="en_1", pathway_id="reference-check", pathway_title="Reference check",
                           step_id="hello", occurrence=occurrence, channel="email", due=utcnow(),
                           pathway_version=version, template="template")


async def test_the_named_version_s_text_goes_in_the_patient_s_language(delivery):
    activities, inbox = delivery
    await ActivityEnvironment().run(activities.deliver_message, reference(version=1))
    await ActivityEnvironment().run(activities.deliver_message, reference(version=2, occurrence=2))
    assert [(mail.subject, mail.message_id) for mail in inbox.messages] == [
        ("您好 v1", "<en_1.hello.1.scheduled@carepath>"), ("您好 v2", "<en_1.hello.2.scheduled@carepath>")]


async def test_a_version_that_was_never_deployed_fails_at_once_naming_it(delivery):
    activities, inbox = delivery
    with pytest.raises(ApplicationError) as unknown:
        await ActivityEnvironment().run(activities.deliver_message, reference(version=7))
    assert (unknown.value.type, unknown.value.non_retryable) == ("UnknownPathway", True)
    assert unknown.value.message == "pathway 'reference-check' has no version 7"
    assert inbox.messages == []


async def test_a_delivery_without_title_and_reach_takes_them_from_the_named_version(delivery):
    activities, inbox = delivery
    request = MessageDelivery(enrollment_id="en_1", pathway_id="reference-check", step_id="hello", occurrence=1,
                              channel=None, due=utcnow(), pathway_version=3, template="template")
    receipt = await ActivityEnvironment().run(activities.deliver_message, request)
    assert receipt.channel == "email"
    assert [mail.subject for mail in inbox.messages] == ["Reference check v3"]
