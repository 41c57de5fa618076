"""Faults a hospital will see, all in one run of the dev stack: 200 enrollments whose messages fall due
seconds apart while the worker is SIGKILLed 10 times (restarted each time, mostly just as a message
lands, so that deliveries are in flight), the SMTP server is away for 30 s, and Temporal's dev server is
restarted on its history file. Afterwards the inbox holds every planned message (counted by Message-ID)
and every enrollment has completed, in the database and in Temporal.

Each message once, but for the one case SMTP leaves open (ARCHITECTURE.md, "Delivery"): a worker that
dies after the server has taken a message and before it recorded it as sent. Its claim's lease runs
out, and the next attempt sends the message again under the same Message-ID, for the receiving system
to drop. The test does not excuse a repeat by chance: right after each kill (and the SMTP outage) it
notes the messages that were in the inbox but not recorded as sent, and each must arrive once more for
each such moment, and no other message twice. The figures print with `-s`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus

from activities.delivery import CLAIM_LEASE
from store.db import (
    Enrollment,
    TouchpointRecord,
    create_engine,
    session_factory,
    utcnow,
)
from tests.reliability.conftest import FaultStack, RestartableSink
from tests.stack import Stack, until
from workflows.contracts import workflow_id_for

pytestmark = pytest.mark.e2e

ENROLLMENTS = 200
# Hospital systems enrolling at once; their requests spread the enrollments over some seconds.
CLIENTS = 8
THREE_MESSAGES = """\
id: faults-three-messages
version: 1
title: Three messages in a minute
anchor: start
locales: [en]
steps:
  - kind: message
    id: welcome
    at: 5s
    template:
      en: {subject: "Welcome", body: "Dear {{ patient.first_name }}, welcome."}
  - kind: message
    id: check-in
    at: 20s
    repeat: {every: 15s, times: 2}
    template:
      en: {subject: "Check-in {{ step.occurrence }}", body: "Dear {{ patient.first_name }}, how are you?"}
"""
MESSAGES = [("welcome", 1), ("check-in", 1), ("check-in", 2)]
# Seconds after the first enrollment is asked for: kills while enrolling and as the first messages fall
# due, while SMTP is away, as the backlog goes out after it, and after Temporal's restart. A kill that
# catches deliveries under way delays them by their attempt's timeout and their claim's lease (about
# 1.5 to 2.5 minutes), so the last comes early enough for the run to end within four minutes.
KILL = "kill the worker"
SMTP_DOWN, SMTP_UP = "stop the SMTP sink", "start the SMTP sink"
TEMPORAL_RESTART = "restart Temporal"
SMTP_OUTAGE_SECONDS = 30
FAULTS = [(3, KILL), (9, KILL), (15, KILL), (21, KILL), (24, SMTP_DOWN), (30, KILL), (38, KILL), (46, KILL),
          (24 + SMTP_OUTAGE_SECONDS, SMTP_UP), (56, KILL), (60, TEMPORAL_RESTART), (64, KILL), (70, KILL)]
# A kill waits this long for a message to land, so that it falls with deliveries in flight.
KILL_AIM_SECONDS = 2.0
# Long enough for the socket of a dead worker to be drained by the sink before the inbox is read.
SETTLE_SECONDS = 0.5
# How long a live worker is given to record the outcome of what the SMTP server took before it stopped.
OUTCOME_SECONDS = 5.0
# A killed delivery waits out its attempt's timeout and its claim's lease; then its retry is due.
COMPLETION_TIMEOUT = 300.0


def message_id(enrollment_id: str, step_id: str, occurrence: int, purpose: str = "scheduled") -> str:
    return f"<{enrollment_id}.{step_id}.{occurrence}.{purpose}@carepath>"


@dataclass
class FaultLog:
    started: float
    # When the current worker started (monotonic clock): what it claimed since then dies with it.
    worker_started: float = 0.0
    events: list[str] = field(default_factory=list)
    worker_restarts: list[float] = field(default_factory=list)
    # Messages that failed while SMTP was away and wait for their retry, when it comes back.
    waiting_for_smtp: int = 0
    # Deliveries the killed worker had claimed and not finished, per kill.
    in_flight_at_kills: list[int] = field(default_factory=list)
    # (Message-ID, copies in the inbox) for each copy the server took that no live process will record:
    # one more copy of that message is due.
    unrecorded: set[tuple[str, int]] = field(default_factory=set)
    # Set once every enrollment is made: Temporal restarts only after, so that every request is answered.
    enrolled: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, event: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:6.1f}s {event}")


async def unrecorded_in_inbox(sessions: async_sessionmaker[AsyncSession],
                              inbox: RestartableSink) -> dict[tuple[str, int], str]:
    """The messages the SMTP server has taken whose rows do not say sent: (Message-ID, copies so far) -> the
    row's status, `sending` (the attempt has not decided yet) or `failed` (it saw an error)."""
    copies = Counter(mail.message_id for mail in inbox.messages)
    async with sessions() as session:
        rows = (await session.scalars(select(TouchpointRecord).where(TouchpointRecord.status != "sent"))).all()
    statuses = {message_id(row.enrollment_id, row.step_id, row.occurrence, row.purpose): row.status for row in rows}
    return {(taken, copies[taken]): status for taken, status in statuses.items() if copies[taken]}


async def cut_off_by_the_outage(sessions: async_sessionmaker[AsyncSession], inbox: RestartableSink) -> set[tuple[str, int]]:
    """Messages the server took as it stopped while the worker saw an error: they go again. The worker is
    alive, and may take seconds to record an outcome under a burst; one still undecided after that is
    left for the next kill to find."""
    deadline = time.monotonic() + OUTCOME_SECONDS
    while True:
        unrecorded = await unrecorded_in_inbox(sessions, inbox)
        if "sending" not in unrecorded.values() or time.monotonic() > deadline:
            return {taken for taken, status in unrecorded.items() if status == "failed"}
        await asyncio.sleep(0.2)


async def claimed_since(sessions: async_sessionmaker[AsyncSession], moment: datetime) -> int:
    """Deliveries claimed after `moment` and still sending."""
    async with sessions() as session:
        rows = (await session.scalars(select(TouchpointRecord).where(TouchpointRecord.status == "sending"))).all()
    return sum(1 for row in rows if row.claimed_until - CLAIM_LEASE >= moment)


async def kill_the_worker(fault_stack: FaultStack, sessions: async_sessionmaker[AsyncSession], log: FaultLog) -> None:
    stack, inbox = fault_stack.stack, fault_stack.inbox
    worker_started = utcnow() - timedelta(seconds=time.monotonic() - log.worker_started)
    landed = len(inbox.messages)
    deadline = time.monotonic() + KILL_AIM_SECONDS
    while len(inbox.messages) == landed and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    stack.workers.kill()
    await asyncio.sleep(SETTLE_SECONDS)
    log.in_flight_at_kills.append(await claimed_since(sessions, worker_started))
    taken_unrecorded = set(await unrecorded_in_inbox(sessions, inbox)) - log.unrecorded
    log.unrecorded |= taken_unrecorded
    log.note(f"worker {len(stack.workers.started)} killed with {log.in_flight_at_kills[-1]} deliveries in flight, "
             f"{len(taken_unrecorded)} messages taken by the SMTP server and not recorded as sent")
    restarting = time.monotonic()
    await stack.workers.start()
    log.worker_started = time.monotonic()
    log.worker_restarts.append(time.monotonic() - restarting)


async def inflict(fault_stack: FaultStack, sessions: async_sessionmaker[AsyncSession], log: FaultLog) -> None:
    for at, fault in FAULTS:
        await asyncio.sleep(max(0.0, log.started + at - time.monotonic()))
        if fault == KILL:
            await kill_the_worker(fault_stack, sessions, log)
        elif fault == SMTP_DOWN:
            fault_stack.inbox.stop()
            log.note("SMTP sink stopped")
            cut_off = await cut_off_by_the_outage(sessions, fault_stack.inbox) - log.unrecorded
            log.unrecorded |= cut_off
            log.note(f"{len(cut_off)} messages taken by the SMTP server as it stopped, but not answered")
        elif fault == SMTP_UP:
            async with sessions() as session:
                log.waiting_for_smtp = await session.scalar(
                    select(func.count()).where(TouchpointRecord.status == "failed"))
            fault_stack.inbox.start()
            log.note(f"SMTP sink started, {log.waiting_for_smtp} messages waiting for their retry")
        else:
            await log.enrolled.wait()
            log.note(f"Temporal {fault_stack.temporal.stop()}")
            await fault_stack.temporal.start()
            log.note("Temporal answers again")


async def enroll_all(stack: Stack, log: FaultLog) -> list[str]:
    clients = asyncio.Semaphore(CLIENTS)

    async def enroll() -> str:
        async with clients:
            patient = await stack.add_patient()
            response = await stack.http.post("/enrollments", json={
                "patient_id": patient["id"], "pathway_id": "faults-three-messages",
                "anchor": datetime.now(UTC).isoformat()}, headers={"Idempotency-Key": str(uuid.uuid4())})
            assert response.status_code == 201, response.text
            return response.json()["id"]

    enrolled = await asyncio.gather(*(enroll() for _ in range(ENROLLMENTS)))
    log.note(f"{ENROLLMENTS} enrollments made")
    log.enrolled.set()
    return enrolled


async def test_every_planned_message_goes_once_through_kills_and_outages(fault_stack: FaultStack):
    stack = fault_stack.stack
    await stack.deploy(THREE_MESSAGES)
    engine = create_engine(stack.workers.environment["CAREPATH_DATABASE_URL"])
    sessions = session_factory(engine)
    log = FaultLog(started=time.monotonic(), worker_started=time.monotonic())
    try:
        enrolled, _ = await asyncio.gather(enroll_all(stack, log), inflict(fault_stack, sessions, log))

        async def all_completed() -> bool:
            async with sessions() as session:
                statuses = Counter((await session.scalars(
                    select(Enrollment.status).where(Enrollment.id.in_(enrolled)))).all())
            return statuses["completed"] == ENROLLMENTS

        await until(all_completed, f"{ENROLLMENTS} enrollments to complete", stack.api, timeout=COMPLETION_TIMEOUT,
                    interval=1)
        log.note("every enrollment completed")
        async with sessions() as session:
            touchpoints = Counter((await session.scalars(select(TouchpointRecord.status))).all())
    finally:
        await engine.dispose()
        print("", *log.events, "worker restarts took " + ", ".join(f"{took:.1f}" for took in log.worker_restarts) + " s",
              sep="\n")

    workflows = Counter([(await stack.temporal.get_workflow_handle(workflow_id_for(e)).describe()).status
                         for e in enrolled])
    assert workflows == {WorkflowExecutionStatus.COMPLETED: ENROLLMENTS}
    assert touchpoints == {"sent": ENROLLMENTS * len(MESSAGES)}
    # Messages fell due while SMTP was away: they waited, and went once it was back.
    assert log.waiting_for_smtp > 0

    copies = Counter(mail.message_id for mail in fault_stack.inbox.messages)
    planned = {message_id(e, step, occurrence) for e in enrolled for step, occurrence in MESSAGES}
    repeated = {mid: count for mid, count in copies.items() if count > 1}
    print(f"{sum(copies.values())} messages received, {len(copies)} distinct; repeated: {repeated or 'none'}; "
          f"deliveries in flight at the kills: {log.in_flight_at_kills}")
    assert set(copies) == planned
    assert repeated == {taken: 1 + again for taken, again in Counter(taken for taken, _ in log.unrecorded).items()}
    # The kills fell on deliveries under way, as they are meant to: the suite exercised the leased claims.
    assert sum(log.in_flight_at_kills) > 0
