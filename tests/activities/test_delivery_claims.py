"""A message's delivery attempts, as Temporal's retries produce them: one attempt still sending when
the next starts, and one finishing after it was overtaken. Real database, real SMTP sink."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.channels import EmailChannel, SmtpSettings
from activities.delivery import DeliveryActivities
from store.db import (
    Enrollment,
    Patient,
    TouchpointRecord,
    session_factory,
    utcnow,
)
from tools.smtp_sink import SmtpSink
from workflows.contracts import MessageDelivery, MessageTemplate


class Links:
    def url(self, enrollment_id, step_id, occurrence, expires) -> str:
        return "https://carepath.example/f/unused"


@pytest.fixture
async def delivery(database):
    sessions = database
    async with sessions.begin() as session:
        session.add(Patient(id="pt_1", given_name="Wei", family_name="Li", email="wei@example.test", locale="en",
                            timezone="UTC"))
        await session.flush()
        session.add(Enrollment(id="en_1", patient_id="pt_1", pathway_id="p", pathway_version=1, anchor=utcnow(),
                               timezone="UTC", request_fingerprint="x"))
    with SmtpSink() as inbox:
        email = EmailChannel(SmtpSettings(host="127.0.0.1", port=inbox.port, sender="carepath@example.test"))
        yield DeliveryActivities(sessions, {"email": email}, Links()), sessions, inbox


REQUEST = MessageDelivery(enrollment_id="en_1", pathway_id="p", pathway_title="P", step_id="hello", occurrence=1,
                          channel="email", due=utcnow(),
                          templates={"en": MessageTemplate(subject="Hello", body="Dear {{ patient.first_name }}")})


def attempt(number: int) -> ActivityEnvironment:
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, attempt=number)
    return environment


async def test_a_retry_waits_while_an_earlier_attempt_may_still_be_sending(delivery):
    activities, sessions, inbox = delivery
    # Attempt 1 claimed the message and is still talking to the server (or hung) when Temporal,
    # its start-to-close timeout passed, starts attempt 2.
    async with sessions.begin() as session:
        await activities._claim(session, REQUEST, "test-run/test/1", "pt_1", REQUEST.channel)

    with pytest.raises(ApplicationError) as waiting:
        await attempt(2).run(activities.deliver_message, REQUEST)
    assert waiting.value.type == "DeliveryInProgress" and not waiting.value.non_retryable
    assert inbox.messages == []

    # Its lease over, attempt 1 is surely finished: whether the server took the message is unknown, so
    # attempt 3 sends it, with the same Message-ID.
    async with sessions.begin() as session:
        await session.execute(update(TouchpointRecord).values(claimed_until=utcnow() - timedelta(seconds=1)))
    receipt = await attempt(3).run(activities.deliver_message, REQUEST)
    assert not receipt.duplicate
    [mail] = inbox.messages
    assert mail.message_id == "<en_1.hello.1.scheduled@carepath>"


async def test_an_overtaken_attempt_does_not_overwrite_the_outcome(delivery):
    activities, sessions, inbox = delivery
    async with sessions.begin() as session:
        record_id = (await activities._claim(session, REQUEST, "test-run/test/1", "pt_1", REQUEST.channel)).id
        # Attempt 1's lease runs out while it is still sending.
        await session.execute(update(TouchpointRecord).where(TouchpointRecord.id == record_id)
                              .values(claimed_until=utcnow() - timedelta(seconds=1)))
    await attempt(2).run(activities.deliver_message, REQUEST)

    # Attempt 1 comes back late with a failure: attempt 2's "sent" stands.
    async with sessions() as session:
        await activities._record(session, record_id, "test-run/test/1", status="failed",
                                 last_error="SMTP server unreachable")
    async with sessions() as session:
        stored = await session.get(TouchpointRecord, record_id)
    assert (stored.status, stored.last_error, stored.attempts) == ("sent", None, 2)
    assert len(inbox.messages) == 1
    # And a third attempt (the workflow retrying a lost answer) sends nothing.
    assert (await attempt(3).run(activities.deliver_message, REQUEST)).duplicate
    assert len(inbox.messages) == 1


async def test_of_two_attempts_claiming_at_once_only_one_may_send(delivery):
    activities, sessions, _ = delivery
    # Attempt 1 failed: the message is free for the next attempt.
    async with sessions.begin() as session:
        record_id = (await activities._claim(session, REQUEST, "test-run/test/1", "pt_1", REQUEST.channel)).id
        await session.execute(update(TouchpointRecord).where(TouchpointRecord.id == record_id).values(status="failed"))

    async def claim(attempt_id: str) -> None:
        async with sessions.begin() as session:
            await activities._claim(session, REQUEST, attempt_id, "pt_1", REQUEST.channel)

    # Attempt 2 past its timeout but still running, and attempt 3 already started: both read the failed row,
    # and 3 writes its claim while 2's transaction holds the row.
    async with sessions.begin() as session:
        await activities._claim(session, REQUEST, "test-run/test/2", "pt_1", REQUEST.channel)
        third = asyncio.create_task(claim("test-run/test/3"))
        await asyncio.sleep(0.5)
        assert not third.done()  # waiting for the row
    with pytest.raises(ApplicationError) as waiting:
        await third
    assert waiting.value.type == "DeliveryInProgress"
    async with sessions() as session:
        stored = await session.scalar(select(TouchpointRecord))
    assert (stored.status, stored.claim, stored.attempts) == ("sending", "test-run/test/2", 2)


class SendThenCrowd:
    """Sends; then, as the server answers, another task takes a connection from the pool and keeps it,
    as a burst of other activities does on a busy worker."""

    def __init__(self, email: EmailChannel, sessions, held_for: float):
        self._email, self._sessions, self._held_for = email, sessions, held_for
        self.crowd: asyncio.Task | None = None

    async def send(self, recipient, message) -> None:
        await self._email.send(recipient, message)
        self.crowd = asyncio.create_task(self._hold_a_connection())
        await asyncio.sleep(0.1)

    async def _hold_a_connection(self) -> None:
        async with self._sessions() as session:
            await session.connection()
            await asyncio.sleep(self._held_for)


async def test_a_message_the_server_took_is_recorded_without_queueing_for_a_connection(delivery, database_url):
    # Between the server's answer and the row saying sent, a lost worker means the message goes twice:
    # that moment must not wait on a busy pool. Here the pool has one connection, and a crowd wants it.
    _, _, inbox = delivery
    engine = create_async_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=1)
    sessions = session_factory(engine)
    email = EmailChannel(SmtpSettings(host="127.0.0.1", port=inbox.port, sender="carepath@example.test"))
    crowded = SendThenCrowd(email, sessions, held_for=3)
    activities = DeliveryActivities(sessions, {"email": crowded}, Links())
    try:
        receipt = await attempt(1).run(activities.deliver_message, REQUEST)
        await crowded.crowd
        async with sessions() as session:
            [stored] = (await session.scalars(select(TouchpointRecord))).all()
    finally:
        await engine.dispose()
    assert not receipt.duplicate
    assert (stored.status, stored.message_id) == ("sent", "<en_1.hello.1.scheduled@carepath>")
    assert len(inbox.messages) == 1
