"""The console's view of a migration (issue 14): what moving running enrollments to a newer version of
their pathway would change for each patient, as a picture and in words, and the button that applies it.

The page calls the JSON route's own function (api/routes/migrations.py), so the plan, the audit of
the read and the audit of the change are exactly the API's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse

from api.console.pages import PREFIX, form_body, page
from api.console.pathways import deployed_or_404
from api.deps import RegistryDep, ServicesDep, SessionDep
from api.routes.migrations import (
    EnrollmentMigrationReport,
    MigrationOrder,
    migrate_enrollments,
)
from api.security import Access, allow
from language.migration import MigrationPlan
from services.principals import Role

router = APIRouter(prefix=f"{PREFIX}/pathways/{{pathway_id}}/migration", include_in_schema=False)
Manager = Annotated[Access, Depends(allow(Role.CLINICAL_MANAGER))]

# The picture's width in SVG units, and the days it shows at least (a change tomorrow still has room).
WIDTH = 600
SHORTEST_SPAN_DAYS = 7


@dataclass(frozen=True)
class Mark:
    """One change on an enrollment's strip: where it falls (0..WIDTH), what it is, and its words."""

    x: float
    kind: str  # added, removed, moved, kept
    label: str
    was_x: float | None = None


def strip(plan: MigrationPlan, now: datetime, span_days: float) -> list[Mark]:
    """The changes to one enrollment's plan on a line from now to `span_days` ahead."""
    def x(moment: datetime) -> float:
        return round(max(0.0, min(1.0, (moment - now).total_seconds() / (span_days * 86400))) * WIDTH, 1)

    return ([Mark(x(t.due), "added", f"+ {t.step_id} #{t.occurrence}") for t in plan.added]
            + [Mark(x(t.due), "removed", f"− {t.step_id} #{t.occurrence}") for t in plan.removed]
            + [Mark(x(m.due), "moved", f"{m.was_step_id} → {m.step_id} #{m.occurrence}", was_x=x(m.was_due))
               for m in plan.moved]
            + [Mark(0.0, "kept", f"{k.step_id} #{k.occurrence} ({k.status})") for k in plan.kept])


def span_of(plans: list[MigrationPlan], now: datetime) -> float:
    """Days from now to the last change any of the plans makes: one scale for every strip on the page."""
    moments = [t.due for p in plans for t in (*p.added, *p.removed)] + [
        moment for p in plans for m in p.moved for moment in (m.due, m.was_due)]
    return max([SHORTEST_SPAN_DAYS, *((moment - now).total_seconds() / 86400 + 1 for moment in moments)])


async def _page(request: Request, pathway_id: str, to: int, registry, access: Access,
                enrollments: list[EnrollmentMigrationReport], applied: bool) -> HTMLResponse:
    deployed = await deployed_or_404(registry, pathway_id, to)
    now = datetime.now(deployed.deployed_at.tzinfo)
    span = span_of([e.plan for e in enrollments], now)
    first = next((e.plan for e in enrollments if not e.plan.blocked), None)
    return await page(request, "migration.html", access, section="pathways", deployed=deployed,
                      versions=await registry.versions(pathway_id), applied=applied, span_days=round(span),
                      width=WIDTH, rules=first, rows=[(e, strip(e.plan, now, span)) for e in enrollments],
                      movable=sum(1 for e in enrollments if not e.plan.blocked))


@router.get("", response_class=HTMLResponse)
async def migration_plan_page(request: Request, pathway_id: str, services: ServicesDep, registry: RegistryDep,
                              session: SessionDep, access: Manager,
                              to: Annotated[int, Query(ge=1, description="the version to move to")]) -> HTMLResponse:
    """The dry run: every running enrollment on an older version, what would change for it, and why some cannot."""
    await deployed_or_404(registry, pathway_id, to)
    report = await migrate_enrollments(pathway_id, MigrationOrder(to_version=to, dry_run=True), services, registry,
                                       session, access)
    return await _page(request, pathway_id, to, registry, access, report.enrollments, applied=False)


@router.post("", response_class=HTMLResponse)
async def apply_migration(request: Request, pathway_id: str, services: ServicesDep, registry: RegistryDep,
                          session: SessionDep, access: Manager, to_version: Annotated[int, Form()]) -> HTMLResponse:
    """Move every enrollment that can to the version: each at its own safe point, audited."""
    order = form_body(MigrationOrder, to_version=to_version, dry_run=False)
    report = await migrate_enrollments(pathway_id, order, services, registry, session, access)
    return await _page(request, pathway_id, to_version, registry, access, report.enrollments, applied=True)
