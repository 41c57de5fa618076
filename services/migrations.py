"""Migrating running enrollments to a newer version of their pathway: the report, the change, the undo.

The report (dry run) reads each enrollment's timeline from its workflow, the only place that knows
what is planned, open or in flight, and plans it with language/migration.py; applying sends the new
version to the workflow's `migrate` update, which plans again at a safe point with the same function.
Every change is audited (who, when, which versions) and the enrollment's row follows its workflow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from language.migration import MigrationPlan, describe, plan_migration
from services.registry import PathwayRegistry
from store.db import Enrollment, EscalationRecord
from workflows.contracts import MigrationRequest, RollbackRequest, workflow_id_for
from workflows.pathway import PathwayWorkflow

# Timelines are read this many at a time: enough to plan a thousand enrollments in seconds, few
# enough not to crowd out the workers' own calls to Temporal.
CONCURRENT_READS = 64
UPDATE_TIMEOUT = timedelta(seconds=30)

# (session, action, enrollment id, target): adds one access_audit row to the session, as Access.record does.
Audit = Callable[[AsyncSession, str, str, str], Awaitable[None]]


@dataclass
class EnrollmentMigration:
    """One enrollment's report: its plan, the escalations in progress (never touched), and, once
    applied or rolled back, what came of it."""

    enrollment_id: str
    timezone: str
    plan: MigrationPlan
    escalations: list[str] = field(default_factory=list)
    result: str | None = None

    def lines(self) -> list[str]:
        lines = describe(self.plan, self.timezone)
        lines[0] = f"{self.enrollment_id} ({self.timezone}): {lines[0]}"
        lines += [f"  escalation {escalation} in progress: not touched" for escalation in self.escalations]
        return lines + ([f"  result: {self.result}"] if self.result else [])


async def plan_migrations(sessions: async_sessionmaker[AsyncSession], client: Client, registry: PathwayRegistry,
                          pathway_id: str, to_version: int, *, enrollment_ids: Collection[str] | None = None,
                          now: datetime | None = None) -> list[EnrollmentMigration]:
    """The report for every running enrollment of the pathway on an older version (or those named).

    Raises UnknownPathway if the target version is not deployed. `now`: the moment to plan for (the
    test server's clock in tests)."""
    target = (await registry.get(pathway_id, to_version)).pathway
    now = now or datetime.now(UTC)
    async with sessions() as session:
        query = select(Enrollment).where(Enrollment.pathway_id == pathway_id, Enrollment.status == "active",
                                         Enrollment.pathway_version < to_version)
        if enrollment_ids is not None:
            query = query.where(Enrollment.id.in_(enrollment_ids))
        enrollments = (await session.scalars(query.order_by(Enrollment.id))).all()
        # The workflow knows every escalation it started (its record may still be on its way); the
        # database knows which a person has resolved since.
        resolved = set(await session.scalars(select(EscalationRecord.id).where(
            EscalationRecord.enrollment_id.in_([e.id for e in enrollments]), EscalationRecord.status == "resolved")))
    gate = asyncio.Semaphore(CONCURRENT_READS)

    async def plan_one(enrollment: Enrollment) -> EnrollmentMigration:
        async with gate:
            return await _plan(client, registry, enrollment, target, now, resolved)

    return list(await asyncio.gather(*(plan_one(enrollment) for enrollment in enrollments)))


async def _plan(client: Client, registry: PathwayRegistry, enrollment: Enrollment, target, now,
                resolved: set[str]) -> EnrollmentMigration:
    handle = client.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(enrollment.id))
    try:
        timeline = await handle.query(PathwayWorkflow.timeline)
    except RPCError as error:
        plan = MigrationPlan(pathway_id=target.id, from_version=enrollment.pathway_version, to_version=target.version,
                             blocked=[f"its workflow cannot be read ({error.message})"])
        return EnrollmentMigration(enrollment.id, enrollment.timezone, plan)
    current = (await registry.get(enrollment.pathway_id, timeline.pathway_version or enrollment.pathway_version)).pathway
    if current.version == target.version:
        # Migrated before its row was updated (a crash between the two): applying again updates the row.
        plan = MigrationPlan(pathway_id=target.id, from_version=target.version, to_version=target.version)
    elif timeline.status != "active":
        plan = MigrationPlan(pathway_id=target.id, from_version=current.version, to_version=target.version,
                             blocked=[f"the enrollment is {timeline.status}"])
    else:
        plan = plan_migration(current, target, timeline.entries, enrollment.anchor, enrollment.timezone, now)
    escalations = [event.escalation_id for event in timeline.events
                   if event.kind == "escalation" and event.escalation_id and event.escalation_id not in resolved]
    return EnrollmentMigration(enrollment.id, enrollment.timezone, plan, escalations)


async def apply_migrations(sessions: async_sessionmaker[AsyncSession], client: Client, registry: PathwayRegistry,
                           pathway_id: str, to_version: int, *, actor: str, audit: Audit,
                           enrollment_ids: Collection[str] | None = None) -> list[EnrollmentMigration]:
    """Migrate every enrollment the report shows as able to (or those named); the others are left alone.

    Each enrollment's workflow plans again at its own safe point; what it answers is the result."""
    reports = await plan_migrations(sessions, client, registry, pathway_id, to_version, enrollment_ids=enrollment_ids)
    target = (await registry.get(pathway_id, to_version)).pathway
    for report in reports:
        if report.plan.blocked:
            report.result = "not migrated"
            continue
        handle = client.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(report.enrollment_id))
        try:
            outcome = await handle.execute_update(PathwayWorkflow.migrate, MigrationRequest(pathway=target, actor=actor),
                                                  rpc_timeout=UPDATE_TIMEOUT)
        except (WorkflowUpdateFailedError, RPCError) as refused:
            report.result = f"refused: {_why(refused)}"
            continue
        report.plan, report.result = outcome.plan or report.plan, outcome.status
        await _record(sessions, audit, report.enrollment_id, "enrollment.migrate",
                      f"{pathway_id} v{outcome.from_version} -> v{outcome.to_version}", version=outcome.to_version)
    return reports


async def roll_back(sessions: async_sessionmaker[AsyncSession], client: Client, pathway_id: str, enrollment_id: str,
                    *, actor: str, audit: Audit) -> str:
    """Undo an enrollment's last migration; raise MigrationRefused saying why it cannot be."""
    async with sessions() as session:
        enrollment = await session.get(Enrollment, enrollment_id)
    if enrollment is None or enrollment.pathway_id != pathway_id:
        raise MigrationRefused(f"no enrollment {enrollment_id} on pathway '{pathway_id}'")
    handle = client.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(enrollment_id))
    try:
        outcome = await handle.execute_update(PathwayWorkflow.rollback_migration, RollbackRequest(actor=actor),
                                              rpc_timeout=UPDATE_TIMEOUT)
    except (WorkflowUpdateFailedError, RPCError) as refused:
        raise MigrationRefused(_why(refused)) from None
    target = f"{pathway_id} v{outcome.from_version} -> v{outcome.to_version} (rolled back)"
    await _record(sessions, audit, enrollment_id, "enrollment.migration_rollback", target, version=outcome.to_version)
    return target


class MigrationRefused(Exception):
    """The workflow refused: the enrollment ended, was never migrated, or its new plan has begun."""


async def _record(sessions: async_sessionmaker[AsyncSession], audit: Audit, enrollment_id: str, action: str,
                  target: str, *, version: int) -> None:
    """The row follows its workflow's version, with the audit line, in one transaction."""
    async with sessions() as session:
        enrollment = await session.get(Enrollment, enrollment_id)
        enrollment.pathway_version = version
        await audit(session, action, enrollment_id, target)
        await session.commit()


def _why(refused: WorkflowUpdateFailedError | RPCError) -> str:
    if isinstance(refused, WorkflowUpdateFailedError):
        return getattr(refused.cause, "message", None) or str(refused.cause)
    return refused.message
