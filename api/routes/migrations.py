"""Moving running enrollments to a newer version of their pathway: the dry-run report, the change, the undo."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import RegistryDep, ServicesDep, SessionDep
from api.schemas import MAXIMUM_COUNT, Message
from api.security import Access, allow
from language.migration import MigrationPlan
from services.migrations import (
    EnrollmentMigration,
    MigrationRefused,
    apply_migrations,
    plan_migrations,
    roll_back,
)
from services.principals import Role
from services.registry import UnknownPathway

router = APIRouter(prefix="/pathways/{pathway_id}/migrations", tags=["migrations"])

Manager = Annotated[Access, Depends(allow(Role.CLINICAL_MANAGER))]
# An id as carepath makes them (en_<hex>): anything else cannot name an enrollment, and never reaches a query.
EnrollmentId = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
# One request moves at most this many enrollments by name; without names, every one on an older version.
MAXIMUM_NAMED = 10_000


class MigrationOrder(BaseModel):
    to_version: int = Field(ge=1, le=MAXIMUM_COUNT, description="the deployed version to move to", examples=[3])
    dry_run: bool = Field(default=False, description="only report what would change; change nothing")
    enrollment_ids: list[EnrollmentId] | None = Field(
        default=None, max_length=MAXIMUM_NAMED, description="only these enrollments (default: every running one "
                                                            "on an older version)")


class RollbackOrder(BaseModel):
    enrollment_ids: list[EnrollmentId] = Field(min_length=1, max_length=MAXIMUM_NAMED)


class EnrollmentMigrationReport(BaseModel):
    enrollment_id: str
    timezone: str
    plan: MigrationPlan
    escalations: list[str] = Field(description="escalations in progress: a migration never touches them")
    result: str | None = Field(description="migrated, unchanged, not migrated or refused: why (none in a dry run)")
    text: list[str] = Field(description="the same, as lines for people, dates in the patient's zone")


class MigrationReport(BaseModel):
    pathway_id: str
    to_version: int
    dry_run: bool
    enrollments: list[EnrollmentMigrationReport]


class RollbackResult(BaseModel):
    enrollment_id: str
    rolled_back: bool
    detail: str


def _report(migration: EnrollmentMigration) -> EnrollmentMigrationReport:
    return EnrollmentMigrationReport(enrollment_id=migration.enrollment_id, timezone=migration.timezone,
                                     plan=migration.plan, escalations=migration.escalations, result=migration.result,
                                     text=migration.lines())


def _auditor(access: Access):
    async def audit(session: AsyncSession, action: str, enrollment_id: str, target: str) -> None:
        await access.record(session, action, enrollment_id=enrollment_id, target=target)
    return audit


@router.post("", response_model=MigrationReport, responses={404: {"model": Message}})
async def migrate_enrollments(pathway_id: str, order: MigrationOrder, services: ServicesDep, registry: RegistryDep,
                              session: SessionDep, access: Manager) -> MigrationReport:
    """Report (dry_run) or apply the move of running enrollments to a newer version of this pathway."""
    try:
        if order.dry_run:
            migrations = await plan_migrations(services.sessions, services.temporal, registry, pathway_id,
                                               order.to_version, enrollment_ids=order.enrollment_ids)
        else:
            migrations = await apply_migrations(services.sessions, services.temporal, registry, pathway_id,
                                                order.to_version, actor=access.principal.id, audit=_auditor(access),
                                                enrollment_ids=order.enrollment_ids)
    except UnknownPathway as unknown:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(unknown)) from None
    if order.dry_run:  # the report shows each patient's timeline: a read of patient data
        await access.read_list(session, [("enrollment.migration_plan", m.enrollment_id,
                                          f"{pathway_id} -> v{order.to_version}") for m in migrations])
    return MigrationReport(pathway_id=pathway_id, to_version=order.to_version, dry_run=order.dry_run,
                           enrollments=[_report(migration) for migration in migrations])


@router.post("/rollback", response_model=list[RollbackResult])
async def roll_back_migrations(pathway_id: str, order: RollbackOrder, services: ServicesDep,
                               access: Manager) -> list[RollbackResult]:
    """Undo the last migration of these enrollments: possible until the first touchpoint of its plan is due."""
    results = []
    for enrollment_id in order.enrollment_ids:
        try:
            detail = await roll_back(services.sessions, services.temporal, pathway_id, enrollment_id, actor=access.principal.id,
                                     audit=_auditor(access))
            results.append(RollbackResult(enrollment_id=enrollment_id, rolled_back=True, detail=detail))
        except MigrationRefused as refused:
            results.append(RollbackResult(enrollment_id=enrollment_id, rolled_back=False, detail=str(refused)))
    return results
