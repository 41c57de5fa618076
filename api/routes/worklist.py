"""One list per team of what needs a person: open escalations and call tasks, most urgent first."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import and_, or_, select

from api.deps import SessionDep
from api.routes.escalations import notification_failures
from api.routes.teams import team_or_404
from api.schemas import Message, WorklistItem, enrollment_path
from store.db import CallTaskRecord, EscalationAudit, EscalationRecord
from language.model import Priority

router = APIRouter(prefix="/worklist", tags=["worklist"])

PRIORITY_ORDER: dict[str, int] = {"urgent": 0, "high": 1, "routine": 2}
# A call step has no priority of its own in the pathway language: it is planned follow-up work.
CALL_PRIORITY: Priority = "routine"
OPEN_ESCALATION = ("open", "acknowledged")


@router.get("", response_model=list[WorklistItem], responses={404: {"model": Message, "description": "Unknown team."}})
async def read_worklist(
    session: SessionDep,
    team: Annotated[str | None, Query(description="a team's worklist: what it was asked to look at")] = None,
    priority: Priority | None = None,
    status: Annotated[Literal["open", "acknowledged"] | None, Query(
        description="open: escalations nobody has taken yet, and call tasks; acknowledged: escalations someone "
                    "has taken but not resolved")] = None,
) -> list[WorklistItem]:
    """Open escalations and call tasks, by priority (urgent, high, routine) and then by due time."""
    if team is not None:
        await team_or_404(session, team)
    items = await _escalations(session, team, priority, status)
    if status in (None, "open") and priority in (None, CALL_PRIORITY):
        items += await _call_tasks(session, team)
    return sorted(items, key=lambda item: (PRIORITY_ORDER[item.priority], item.due, item.kind, item.id))


async def _escalations(session: SessionDep, team: str | None, priority: str | None,
                       status: str | None) -> list[WorklistItem]:
    query = select(EscalationRecord).where(EscalationRecord.status.in_([status] if status else OPEN_ESCALATION))
    if priority is not None:
        query = query.where(EscalationRecord.priority == priority)
    if team is not None:
        # Every team told on the way up the ladder may still acknowledge, so each still sees it;
        # after a hand-over, only the team it was handed to.
        told = select(EscalationAudit.escalation_id).where(EscalationAudit.action == "notified",
                                                             EscalationAudit.team == team)
        handed_over = select(EscalationAudit.escalation_id).where(EscalationAudit.action == "reassigned")
        query = query.where(or_(EscalationRecord.team == team,
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


async def _call_tasks(session: SessionDep, team: str | None) -> list[WorklistItem]:
    query = select(CallTaskRecord).where(CallTaskRecord.status == "open")
    if team is not None:
        query = query.where(CallTaskRecord.team == team)
    return [
        WorklistItem(kind="call", id=str(task.id), priority=CALL_PRIORITY, due=task.due_at, status=task.status,
                     team=task.team, script=task.script, enrollment_id=task.enrollment_id, step_id=task.step_id,
                     occurrence=task.occurrence, attempt=task.attempt, link=enrollment_path(task.enrollment_id),
                     href=f"/tasks/{task.id}")
        for task in await session.scalars(query)
    ]
