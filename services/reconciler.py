"""Every `active` enrollment has a workflow, and every stored response reaches it: find the
enrollments that have none and start theirs; deliver the responses still `received` (the outbox).

`services/enrollments.py` commits the row, then starts `enrollment-<id>`. A process that dies (or a
Temporal that is unreachable) between the two leaves an active row with no workflow; a request that
sent an Idempotency-Key repairs itself when repeated, one without it never does. This does, for all.

Safe in several processes at once: the start is `start_workflow`'s, one enrollment, one run, ever
(USE_EXISTING, REJECT_DUPLICATE), so two reconcilers, or a reconciler and a late request, join the same
run and never restart a finished one; a response is delivered as an update whose id is the response's,
so two deliveries are one. Logs carry enrollment ids only, never patient data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from services.enrollments import start_workflow
from services.registry import PathwayRegistry, UnknownPathway
from services.responses import deliver_received
from store.db import Enrollment, utcnow
from workflows.contracts import workflow_id_for

log = logging.getLogger(__name__)

BATCH = 500
# Describes in flight at once: enough to check thousands of enrollments in seconds, few enough
# not to crowd out the API's own calls to Temporal.
CONCURRENCY = 16


@dataclass(frozen=True)
class Reconciled:
    checked: int = 0
    started: int = 0
    # The workflow has closed and the row still says active: the status write may just be late,
    # or it failed. Never restarted (a closed run is final), only counted and logged.
    closed_but_active: int = 0
    # The row names a pathway version the registry does not have: nothing to start it with.
    failed: int = 0
    # Responses stored while their workflow was unreachable, now delivered: taken, or refused (the
    # enrollment ended meanwhile).
    responses_accepted: int = 0
    responses_refused: int = 0


async def reconcile(sessions: async_sessionmaker[AsyncSession], client: Client, registry: PathwayRegistry,
                    task_queue: str, *, older_than: timedelta = timedelta(minutes=2),
                    batch: int = BATCH) -> Reconciled:
    """Start the workflow of every active enrollment created more than `older_than` ago that has none,
    then deliver every response stored more than `older_than` ago and still `received`.

    Younger rows are left alone: their request may still be on its way to the workflow. Enrollments
    are read `batch` at a time, in id order, never all at once.
    """
    cutoff = utcnow() - older_than
    limit = asyncio.Semaphore(CONCURRENCY)
    outcomes: list[str] = []
    after = ""
    while True:
        async with sessions() as session:
            enrollments = list(await session.scalars(
                select(Enrollment)
                .where(Enrollment.status == "active", Enrollment.created_at < cutoff, Enrollment.id > after)
                .order_by(Enrollment.id).limit(batch)))
        if not enrollments:
            break
        after = enrollments[-1].id

        async def check(enrollment: Enrollment) -> str:
            async with limit:
                return await _check(client, registry, task_queue, enrollment)

        outcomes += await asyncio.gather(*(check(enrollment) for enrollment in enrollments))
        if len(enrollments) < batch:
            break
    accepted, refused = await deliver_received(sessions, client, registry.instruments, older_than=older_than)
    result = Reconciled(checked=len(outcomes), started=outcomes.count("started"),
                        closed_but_active=outcomes.count("closed"), failed=outcomes.count("failed"),
                        responses_accepted=accepted, responses_refused=refused)
    log.info("reconciled active enrollments: %d checked, %d workflows started, %d closed but active, %d failed; "
             "responses from the outbox: %d accepted, %d refused", result.checked, result.started,
             result.closed_but_active, result.failed, result.responses_accepted, result.responses_refused)
    return result


async def _check(client: Client, registry: PathwayRegistry, task_queue: str, enrollment: Enrollment) -> str:
    """"running", "closed", "started" or "failed"; a Temporal that cannot answer fails the whole run."""
    workflow_id = workflow_id_for(enrollment.id)
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    else:
        if description.status == WorkflowExecutionStatus.RUNNING:
            return "running"
        log.warning("enrollment %s is active but its workflow %s is %s; not restarted (its status may "
                    "not have been recorded yet)", enrollment.id, workflow_id,
                    description.status.name if description.status else "closed")
        return "closed"
    try:
        deployed = await registry.get(enrollment.pathway_id, enrollment.pathway_version)
    except UnknownPathway as unknown:
        log.error("enrollment %s is active without a workflow and cannot be started: %s", enrollment.id, unknown)
        return "failed"
    await start_workflow(client, task_queue, enrollment, deployed.pathway)
    log.warning("enrollment %s was active without a workflow; started %s", enrollment.id, workflow_id)
    return "started"


async def reconcile_every(seconds: float, sessions: async_sessionmaker[AsyncSession], client: Client,
                          registry: PathwayRegistry, task_queue: str) -> None:
    """Reconcile now, then every `seconds`, until cancelled; a failed run is logged and tried again."""
    while True:
        try:
            await reconcile(sessions, client, registry, task_queue)
        except Exception:
            log.exception("reconciling enrollments failed; trying again in %s s", seconds)
        await asyncio.sleep(seconds)


@asynccontextmanager
async def reconciling(seconds: float, sessions: async_sessionmaker[AsyncSession], client: Client,
                      registry: PathwayRegistry, task_queue: str) -> AsyncIterator[None]:
    """`reconcile_every` in the background while the block runs (so start-up does not wait on it),
    cancelled when it ends; `seconds` 0 (or less) runs nothing."""
    if seconds <= 0:
        yield
        return
    task = asyncio.create_task(reconcile_every(seconds, sessions, client, registry, task_queue),
                               name="reconcile-enrollments")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
