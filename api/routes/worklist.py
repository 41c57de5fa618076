"""One list per team of what needs a person: open escalations and call tasks, most urgent first."""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import and_, or_, select

from api.deps import SessionDep
from api.paging import PageDep
from api.routes.escalations import notification_failures
from api.routes.teams import teams_to_show
from api.schemas import Message, WorklistItem, enrollment_path
from api.security import Access, allow
from language.model import Priority
from services.principals import Role
from store.db import CallTaskRecord, EscalationAudit, EscalationRecord

router = APIRouter(prefix="/worklist", tags=["worklist"])

PRIORITY_ORDER: dict[str, int] = {"urgent": 0, "high": 1, "routine": 2}
# A call step has no priority of its own in the pathway language: it is planned follow-up work.
CALL_PRIORITY: Priority = "routine"
OPEN_ESCALATION = ("open", "acknowledged")


@router.get("", response_model=list[WorklistItem], responses={404: {"model": Message, "description": "Unknown team."}})
async def read_worklist(
    session: SessionDep,
    access: Annotated[Access, Depends(allow(Role.CLINICIAN))],
    page: PageDep,
    team: Annotated[str | None, Query(description="one of your teams' worklist: what it was asked to look at; "
                                                   "all of your teams' without it")] = None,
    priority: Priority | None = None,
    status: Annotated[Literal["open", "acknowledged"] | None, Query(
        description="open: escalations nobody has taken yet, and call tasks; acknowledged: escalations someone "
                    "has taken but not resolved")] = None,
) -> list[WorklistItem]:
    """Open escalations and call tasks, by priority (urgent, high, routine) and then by due time."""
    teams = await teams_to_show(session, access, team)
    items = await _escalations(session, teams, priority, status)
    if status in (None, "open") and priority in (None, CALL_PRIORITY):
        items += await _call_tasks(session, teams)
    shown = page.of(sorted(items, key=lambda item: (PRIORITY_ORDER[item.priority], item.due, item.kind, item.id)))
    await access.read_list(session, [(f"worklist.{item.kind}", item.enrollment_id, item.id) for item in shown])
    return shown


async def _escalations(session: SessionDep, teams: Collection[str] | None, priority: str | None,
                       status: str | None) -> list[WorklistItem]:
    query = select(EscalationRecord).where(EscalationRecord.status.in_([status] if status else OPEN_ESCALATION))
    if priority is not None:
        query = query.where(EscalationRecord.priority == priority)
    if teams is not None:
        # Every team told on the way up the ladder may still acknowledge, so each still sees it;
        # after a hand-over, only the team it was handed to.
        told = select(EscalationAudit.escalation_id).where(EscalationAudit.action == "notified",
                                                             EscalationAudit.team.in_(teams))
        handed_over = select(EscalationAudit.escalation_id).where(EscalationAudit.action == "reassigned")
        query = query.where(or_(EscalationRecord.team.in_(teams),
                                and_(EscalationRecord.id.in_(told), EscalationRecord.id.not_in(handed_over))))
    escalations = list(await session.scalars(query))
    failed = await session.scalars(select(EscalationAudit).where(
        EscalationAudit.action == "notify_failed", EscalationAudit.escalation_id.in_([e.id for e in escalations]))
        .order_by(EscalationAudit.at, EscalationAudit.id))
    failures_of: dict[str, list[EscalationAudit]] = {}
    for line in failed:
        failures_of.setdefault(line.escalation_id, []).append(line)
    return [
        WorklistItem(kind="escalation", id=escalation.id, priority=escalation.priority, due=escalation.opened_at,
                     status=escalation.status, team=escalation.team, reason=escalation.reason,
                     enrollment_id=escalation.enrollment_id, step_id=escalation.step_id,
                     occurrence=escalation.occurrence, tier=escalation.tier,
                     notification_failures=notification_failures(failures_of.get(escalation.id, [])),
                     link=enrollment_path(escalation.enrollment_id), href=f"/escalations/{escalation.id}")
        for escalation in escalations
    ]


async def _call_tasks(session: SessionDep, teams: Collection[str] | None) -> list[WorklistItem]:
    query = select(CallTaskRecord).where(CallTaskRecord.status == "open")
    if teams is not None:
        query = query.where(CallTaskRecord.team.in_(teams))
    return [
        WorklistItem(kind="call", id=task.public_id, priority=CALL_PRIORITY, due=task.due_at, status=task.status,
                     team=task.team, script=task.script, enrollment_id=task.enrollment_id, step_id=task.step_id,
                     occurrence=task.occurrence, attempt=task.attempt, link=enrollment_path(task.enrollment_id),
                     href=f"/tasks/{task.public_id}")
        for task in await session.scalars(query)
    ]
