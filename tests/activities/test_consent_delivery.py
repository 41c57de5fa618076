"""Delivery asks for consent before every message: a withdrawn channel is closed, and with the site's
CAREPATH_REQUIRE_CONSENT so is a channel never consented to. Every email carries the patient's own
unsubscribe link, at its foot and in its List-Unsubscribe headers. Real database, real SMTP sink."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.channels import EmailChannel, SmtpSettings
from activities.delivery import DeliveryActivities
from services.consent import Recorder, record_decision
from services.links import UnsubscribeLinks
from store.db import Enrollment, Patient, TouchpointRecord, utcnow
from tools.smtp_sink import SmtpSink
from workflows.contracts import MessageDelivery, MessageTemplate

UNSUBSCRIBE = UnsubscribeLinks(["test-secret"], "https://carepath.example")
NURSE = Recorder("staff", "st_nurse")


class FormLinks:
    def url(self, enrollment_id, step_id, occurrence, expires) -> str:
        return "https://carepath.example/f/unused"


def delivery_of(occurrence: int) -> MessageDelivery:
    return MessageDelivery(enrollment_id="en_1", pathway_id="p", pathway_title="P", step_id="hello",
                           occurrence=occurrence, channel="email", due=utcnow(),
                           templates={"en": MessageTemplate(subject="Hello", body="Dear {{ patient.first_name }}")})


@pytest.fixture
async def inbox():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
async def sessions(database):
    async with database.begin() as session:
        session.add(Patient(id="pt_1", given_name="Wei", family_name="Li", email="wei@example.test", locale="en",
                            timezone="UTC"))
        await session.flush()
        session.add(Enrollment(id="en_1", patient_id="pt_1", pathway_id="p", pathway_version=1, anchor=utcnow(),
                               timezone="UTC", request_fingerprint="x"))
    return database


def activities(sessions, inbox: SmtpSink, *, require_consent: bool) -> DeliveryActivities:
    email = EmailChannel(SmtpSettings(host="127.0.0.1", port=inbox.port, sender="carepath@example.test"))
    return DeliveryActivities(sessions, {"email": email}, FormLinks(), UNSUBSCRIBE, require_consent=require_consent)


async def decide(sessions, decision: str) -> None:
    async with sessions.begin() as session:
        record_decision(session, "pt_1", "email", decision, "verbal", NURSE)


async def touchpoint(sessions, occurrence: int) -> TouchpointRecord:
    async with sessions() as session:
        return await session.scalar(select(TouchpointRecord).where(TouchpointRecord.occurrence == occurrence))


async def refused(delivering: DeliveryActivities, occurrence: int) -> ApplicationError:
    with pytest.raises(ApplicationError) as refusal:
        await ActivityEnvironment().run(delivering.deliver_message, delivery_of(occurrence))
    return refusal.value


async def test_where_the_site_requires_consent_a_channel_without_it_is_closed_until_granted(sessions, inbox):
    delivering = activities(sessions, inbox, require_consent=True)

    refusal = await refused(delivering, 1)
    assert (refusal.message, refusal.type, refusal.non_retryable) == ("no consent for email", "NoConsent", True)
    assert inbox.messages == []
    record = await touchpoint(sessions, 1)
    assert (record.status, record.last_error) == ("failed", "no consent for email")

    await decide(sessions, "granted")
    await ActivityEnvironment().run(delivering.deliver_message, delivery_of(2))
    assert [mail.subject for mail in inbox.messages] == ["Hello"]


async def test_without_the_setting_a_channel_is_open_until_the_patient_withdraws(sessions, inbox):
    delivering = activities(sessions, inbox, require_consent=False)
    await ActivityEnvironment().run(delivering.deliver_message, delivery_of(1))
    assert len(inbox.messages) == 1

    await decide(sessions, "withdrawn")
    assert (await refused(delivering, 2)).message == "no consent for email"
    # Granted again, by the newest decision: the channel opens again.
    await decide(sessions, "granted")
    await ActivityEnvironment().run(delivering.deliver_message, delivery_of(3))
    assert len(inbox.messages) == 2


async def test_a_withdrawal_holds_on_every_retry(sessions, inbox):
    delivering = activities(sessions, inbox, require_consent=False)
    await decide(sessions, "withdrawn")
    for attempt in (1, 2):
        environment = ActivityEnvironment()
        environment.info = dataclasses.replace(environment.info, attempt=attempt)
        with pytest.raises(ApplicationError, match="no consent for email"):
            await environment.run(delivering.deliver_message, delivery_of(1))
    assert inbox.messages == []


async def test_every_email_carries_the_patients_unsubscribe_link_for_one_click_mail_clients(sessions, inbox):
    await ActivityEnvironment().run(activities(sessions, inbox, require_consent=False).deliver_message,
                                    delivery_of(1))
    [mail] = inbox.messages
    header = str(mail.message["List-Unsubscribe"])
    assert header.startswith("<https://carepath.example/u/") and header.endswith(">")
    url = header[1:-1]
    assert str(mail.message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert mail.body.startswith("Dear Wei")
    assert mail.body.rstrip().endswith(f"To stop these emails: {url}")
    claims = UNSUBSCRIBE.read(url.rsplit("/", 1)[1])
    assert (claims.patient_id, claims.channel) == ("pt_1", "email")
