"""`carepath migrate`: move running enrollments to a newer version of their pathway, from the command line.

The same service as POST /pathways/{id}/migrations, on the database CAREPATH_DATABASE_URL names and the
Temporal CAREPATH_TEMPORAL_ADDRESS names; every change is audited under `--by`, the operator's staff id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from services.migrations import (
    EnrollmentMigration,
    MigrationRefused,
    apply_migrations,
    plan_migrations,
    roll_back,
)
from services.registry import PathwayRegistry, UnknownPathway
from services.settings import load_settings
from services.site import load_site
from services.temporal import connect
from store.db import AccessAudit, create_engine, session_factory

migrate_app = typer.Typer(help="move running enrollments to a newer version of their pathway", no_args_is_help=True)

EXIT_REFUSED = 1
T = TypeVar("T")

PathwayArgument = Annotated[str, typer.Argument(help="the pathway's id")]
ToVersion = Annotated[int, typer.Option("--to", min=1, help="the deployed version to move to")]
Enrollments = Annotated[list[str] | None, typer.Option("--enrollment", help="only this enrollment (repeatable)")]
AsJson = Annotated[bool, typer.Option("--json", help="the report as JSON")]
Operator = Annotated[str, typer.Option("--by", help="your staff id: the audit names who did it")]


def _run(work: Callable[..., Awaitable[T]]) -> T:
    """Run `work(sessions, client, registry)` against the configured database and Temporal."""
    async def connected() -> T:
        settings = load_settings()
        engine = create_engine(settings.DATABASE_URL)
        try:
            sessions = session_factory(engine)
            site = load_site(settings.PATHWAYS_DIR)
            registry = PathwayRegistry(sessions, site.instruments, site.calendars)
            return await work(sessions, await connect(settings), registry)
        finally:
            await engine.dispose()
    try:
        return asyncio.run(connected())
    except UnknownPathway as unknown:
        typer.echo(str(unknown), err=True)
        raise typer.Exit(EXIT_REFUSED) from None


def _operator_audit(operator: str):
    async def audit(session: AsyncSession, action: str, enrollment_id: str, target: str) -> None:
        session.add(AccessAudit(actor_kind="staff", actor_id=operator, actor_roles="cli", action=action,
                                outcome="allowed", enrollment_id=enrollment_id, target=target))
    return audit


def _show(migrations: list[EnrollmentMigration], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([{"enrollment_id": m.enrollment_id, "timezone": m.timezone, "escalations": m.escalations,
                                "result": m.result, "plan": m.plan.model_dump(mode="json")} for m in migrations],
                              indent=2))
        return
    for migration in migrations:
        typer.echo("\n".join(migration.lines()))
    typer.echo(f"{len(migrations)} enrollment(s); {sum(1 for m in migrations if m.plan.blocked)} cannot migrate")


@migrate_app.command("plan")
def plan(pathway: PathwayArgument, to: ToVersion, enrollment: Enrollments = None, as_json: AsJson = False) -> None:
    """Report, for every running enrollment on an older version, what moving to --to would change."""
    _show(_run(lambda sessions, client, registry: plan_migrations(
        sessions, client, registry, pathway, to, enrollment_ids=enrollment)), as_json)


@migrate_app.command("apply")
def apply(pathway: PathwayArgument, to: ToVersion, by: Operator, enrollment: Enrollments = None,
          as_json: AsJson = False) -> None:
    """Move every enrollment that can (or those named) to --to; the others are reported and left alone."""
    _show(_run(lambda sessions, client, registry: apply_migrations(
        sessions, client, registry, pathway, to, actor=by, audit=_operator_audit(by), enrollment_ids=enrollment)),
          as_json)


@migrate_app.command("rollback")
def rollback(pathway: PathwayArgument, enrollments: Annotated[list[str], typer.Argument(help="enrollment ids")],
             by: Operator) -> None:
    """Undo these enrollments' last migration: possible until the first touchpoint of its plan is due."""
    async def undo(sessions, client, registry) -> int:
        refused = 0
        for enrollment_id in enrollments:
            try:
                typer.echo(f"{enrollment_id}: " + await roll_back(sessions, client, pathway, enrollment_id,
                                                                   actor=by, audit=_operator_audit(by)))
            except MigrationRefused as why:
                refused += 1
                typer.echo(f"{enrollment_id}: {why}", err=True)
        return refused
    if _run(undo):
        raise typer.Exit(EXIT_REFUSED)
