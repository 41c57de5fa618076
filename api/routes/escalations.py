"""Escalations as staff act on them. The EscalationWorkflow decides and records (row and audit);
the API checks who is asking and keeps the resolver's note, which never enters workflow history."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import SessionDep, TemporalDep
from api.routes.enrollments import QUERY_TIMEOUT, UPDATE_TIMEOUT
from api.routes.teams import team_or_422
from api.schemas import (
    AuditLine,
    EscalationDetail,
    Message,
    ReassignBody,
    ResolveBody,
    enrollment_path,
)
from api.security import Access, allow
from services.principals import Role
from services.scope import may_see_enrollment
from store.db import EscalationAudit, EscalationRecord
from workflows.contracts import (
    EscalationState,
    NotificationFailure,
    Reassignment,
    StaffAction,
    escalation_workflow_id,
)
from workflows.escalation import EscalationWorkflow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/escalations", tags=["escalations"])
T = TypeVar("T")
Clinician = Annotated[Access, Depends(allow(Role.CLINICIAN))]

ACTION_RESPONSES = {
    404: {"model": Message, "description": "Unknown escalation, or none of your teams was asked to look."},
    409: {"model": Message, "description": "The workflow refused: already acknowledged or resolved."},
    503: {"model": Message, "description": "No worker answered in time."},
}


@router.get("/{escalation_id}", response_model=EscalationDetail, responses={404: {"model": Message}})
async def read_escalation(escalation_id: str, session: SessionDep, temporal: TemporalDep,
                          access: Clinician) -> EscalationDetail:
    """Read an escalation with its audit trail and, when a worker answers, the workflow's live state."""
    escalation = await escalation_or_404(session, escalation_id, access)
    await _audit(session, access, "escalation.read", escalation)
    return await detail(session, escalation_id, await live_state(temporal, escalation_id))


@router.post("/{escalation_id}/acknowledge", response_model=EscalationDetail, responses=ACTION_RESPONSES)
async def acknowledge_escalation(escalation_id: str, session: SessionDep, temporal: TemporalDep,
                                 access: Clinician) -> EscalationDetail:
    """Take an escalation for your team: the ladder stops climbing."""
    escalation, action = await _act_as(session, escalation_id, access, "escalation.acknowledge")
    state = await workflow_update(_handle(temporal, escalation_id).execute_update(
        EscalationWorkflow.acknowledge, action, rpc_timeout=UPDATE_TIMEOUT), _gone(escalation))
    return await detail(session, escalation_id, state)


@router.post("/{escalation_id}/resolve", response_model=EscalationDetail, responses=ACTION_RESPONSES)
async def resolve_escalation(escalation_id: str, body: ResolveBody, session: SessionDep,
                             temporal: TemporalDep, access: Clinician) -> EscalationDetail:
    """Close an escalation with what was done; the note is kept with the escalation."""
    escalation, action = await _act_as(session, escalation_id, access, "escalation.resolve")
    state = await workflow_update(_handle(temporal, escalation_id).execute_update(
        EscalationWorkflow.resolve, action, rpc_timeout=UPDATE_TIMEOUT), _gone(escalation))
    # Only once the workflow has accepted: a refused resolve leaves no note behind.
    await session.execute(update(EscalationRecord).where(EscalationRecord.id == escalation_id)
                          .values(outcome_note=body.outcome))
    await session.commit()
    return await detail(session, escalation_id, state)


@router.post(
    "/{escalation_id}/reassign",
    response_model=EscalationDetail,
    responses=ACTION_RESPONSES | {422: {"description": "Unknown team, or a malformed field."}},
)
async def reassign_escalation(escalation_id: str, body: ReassignBody, session: SessionDep,
                              temporal: TemporalDep, access: Clinician) -> EscalationDetail:
    """Hand an escalation to another team, which is told at once."""
    await escalation_or_404(session, escalation_id, access)
    await team_or_422(session, body.to_team)
    escalation, action = await _act_as(session, escalation_id, access, "escalation.reassign")
    state = await workflow_update(_handle(temporal, escalation_id).execute_update(
        EscalationWorkflow.reassign, Reassignment(**action.model_dump(), to_team=body.to_team),
        rpc_timeout=UPDATE_TIMEOUT), _gone(escalation))
    return await detail(session, escalation_id, state)


async def escalation_or_404(session: AsyncSession, escalation_id: str, access: Access) -> EscalationRecord:
    """The escalation, if one of the principal's teams may see its enrollment; the same 404 either way."""
    escalation = await session.get(EscalationRecord, escalation_id)
    if escalation is None or not await may_see_enrollment(session, access.principal, escalation.enrollment_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"escalation '{escalation_id}' not found")
    return escalation


async def _act_as(session: AsyncSession, escalation_id: str, access: Access,
                  action: str) -> tuple[EscalationRecord, StaffAction]:
    """The escalation, and the signed-in staff member acting for the team of theirs that was asked to look
    (the workflow checks that team)."""
    escalation = await escalation_or_404(session, escalation_id, access)
    told = set(await session.scalars(select(EscalationAudit.team).where(
        EscalationAudit.escalation_id == escalation_id, EscalationAudit.action == "notified")))
    theirs = sorted(access.principal.teams)
    team = escalation.team if escalation.team in access.principal.teams else next(
        (candidate for candidate in theirs if candidate in told), theirs[0] if theirs else "")
    # Committed now, whatever the workflow answers; this also ends the read: the update's activities
    # write these rows, and SQLite refuses to turn a read transaction that has seen an older snapshot into a write.
    await _audit(session, access, action, escalation)
    return escalation, StaffAction(staff_id=access.principal.id, team=team)


async def _audit(session: AsyncSession, access: Access, action: str, escalation: EscalationRecord) -> None:
    await access.read(session, action, enrollment_id=escalation.enrollment_id, target=escalation.id)


def _gone(escalation: EscalationRecord) -> str:
    """What to say when the workflow has closed: it only closes once resolved."""
    if escalation.status == "resolved":
        return f"escalation {escalation.id} is already resolved"
    return f"escalation {escalation.id}'s workflow is not running"


def _handle(temporal: Client, escalation_id: str) -> WorkflowHandle:
    return temporal.get_workflow_handle_for(EscalationWorkflow.run, escalation_workflow_id(escalation_id))


async def workflow_update(update_call: Awaitable[T], not_running: str) -> T:
    """Await a workflow update: a validator's refusal is a 409 in the workflow's own words."""
    try:
        return await update_call
    except WorkflowUpdateFailedError as refused:
        cause = refused.cause
        raise HTTPException(status.HTTP_409_CONFLICT,
                            cause.message if isinstance(cause, ApplicationError) else str(refused)) from None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "the workflow did not answer in time; read it again before retrying") from None
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        raise HTTPException(status.HTTP_409_CONFLICT, not_running) from None


async def live_state(temporal: Client, escalation_id: str) -> EscalationState | None:
    """The workflow's own account, also after it has closed; None if it cannot answer now."""
    try:
        return await _handle(temporal, escalation_id).query(EscalationWorkflow.state, rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError) as error:
        log.warning("no live state for escalation %s: %s", escalation_id, type(error).__name__)
        return None


async def detail(session: AsyncSession, escalation_id: str, state: EscalationState | None) -> EscalationDetail:
    """The stored row (as the workflow's activity last wrote it) and its audit lines, oldest first."""
    escalation = await session.get(EscalationRecord, escalation_id, populate_existing=True)
    audit = list(await session.scalars(select(EscalationAudit).where(EscalationAudit.escalation_id == escalation_id)
                                       .order_by(EscalationAudit.at, EscalationAudit.id)))
    return EscalationDetail(
        id=escalation.id, enrollment_id=escalation.enrollment_id, step_id=escalation.step_id,
        occurrence=escalation.occurrence, trigger=escalation.trigger, reason=escalation.reason,
        priority=escalation.priority, policy=escalation.policy, response_id=escalation.response_id,
        status=escalation.status, team=escalation.team, tier=escalation.tier, opened_at=escalation.opened_at,
        acknowledged_by=escalation.acknowledged_by, acknowledged_at=escalation.acknowledged_at,
        resolved_by=escalation.resolved_by, resolved_at=escalation.resolved_at, outcome_note=escalation.outcome_note,
        link=enrollment_path(escalation.enrollment_id), notification_failures=notification_failures(audit),
        audit=[AuditLine.model_validate(line) for line in audit], state=state,
    )


def notification_failures(audit: list[EscalationAudit]) -> list[NotificationFailure]:
    """The notify_failed lines of an escalation's audit, whose detail is "<channel>: <error type>"."""
    failures = []
    for line in audit:
        if line.action == "notify_failed" and line.detail:
            channel, _, error = line.detail.partition(": ")
            failures.append(NotificationFailure(team=line.team, tier=line.tier, channel=channel, error=error,
                                                at=line.at))
    return failures
