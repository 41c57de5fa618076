"""Call tasks (电话随访): staff phone the patient and record whether they reached them.

The outcome goes to the enrollment's workflow first; only once it has accepted are the notes and
values written to the task, so a refused outcome leaves the task as it was.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import ServicesDep, SessionDep, TemporalDep
from api.paging import PageDep
from api.routes.enrollments import UPDATE_TIMEOUT
from api.routes.escalations import workflow_update
from api.routes.teams import teams_to_show
from api.schemas import (
    CallOutcomeBody,
    CallOutcomeRecorded,
    CallTaskPublic,
    Message,
    enrollment_path,
)
from api.security import Access, allow
from services.calls import CallValuesInvalid, read_call_values, values_for_rules
from services.principals import Role
from services.scope import may_see_enrollment
from store.db import CallTaskRecord, Enrollment, utcnow
from workflows.contracts import CallOutcome, workflow_id_for
from workflows.pathway import PathwayWorkflow

router = APIRouter(prefix="/tasks", tags=["tasks"])
Clinician = Annotated[Access, Depends(allow(Role.CLINICIAN))]


@router.get("", response_model=list[CallTaskPublic], responses={404: {"model": Message, "description": "Unknown team."}})
async def list_open_tasks(session: SessionDep, access: Clinician, page: PageDep,
                          team: Annotated[str | None, Query(description="only this team's tasks")] = None) -> list[CallTaskPublic]:
    """List your teams' open call tasks, the earliest due first."""
    query = select(CallTaskRecord).where(CallTaskRecord.status == "open").order_by(CallTaskRecord.due_at,
                                                                                   CallTaskRecord.id)
    teams = await teams_to_show(session, access, team)
    if teams is not None:
        query = query.where(CallTaskRecord.team.in_(teams))
    tasks = list(await session.scalars(page.apply(query)))
    await access.read_list(session, [("call_task.list", task.enrollment_id, task.public_id) for task in tasks])
    return [present(task) for task in tasks]


@router.get("/{task_id}", response_model=CallTaskPublic, responses={404: {"model": Message}})
async def read_task(task_id: str, session: SessionDep, access: Clinician) -> CallTaskPublic:
    """Read one call task, with its outcome once recorded."""
    task = await task_or_404(session, task_id, access)
    await access.read(session, "call_task.read", enrollment_id=task.enrollment_id, target=task.public_id)
    return present(task)


@router.post(
    "/{task_id}/outcome",
    response_model=CallOutcomeRecorded,
    responses={
        404: {"model": Message, "description": "Unknown task or staff member."},
        409: {"model": Message, "description": "The task is not waiting for an outcome, or the pathway refused it."},
        422: {"description": "Values the call step's form does not have, or out of its range."},
        503: {"model": Message, "description": "No worker answered in time."},
    },
)
async def record_task_outcome(task_id: str, body: CallOutcomeBody, session: SessionDep, temporal: TemporalDep,
                              services: ServicesDep, access: Clinician) -> CallOutcomeRecorded:
    """Record a call's outcome: the pathway's rules act on the values; the notes stay with the task."""
    task = await task_or_404(session, task_id, access)
    await access.record(session, "call_task.outcome", enrollment_id=task.enrollment_id, target=task.public_id)
    await session.commit()
    if task.status != "open":
        raise HTTPException(status.HTTP_409_CONFLICT, f"call task {task_id} is {task.status}, not waiting for an outcome")
    values, for_rules = await measured_values(services, session, task, body.values)
    # End the read before the update: SQLite will not turn a stale read transaction into a write.
    await session.commit()
    handle = temporal.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(task.enrollment_id))
    rules = await workflow_update(
        handle.execute_update(PathwayWorkflow.record_call_outcome,
                              CallOutcome(step_id=task.step_id, occurrence=task.occurrence, outcome=body.outcome,
                                          staff_id=access.principal.id, values=for_rules),
                              rpc_timeout=UPDATE_TIMEOUT),
        f"the enrollment {task.enrollment_id} has ended; its call tasks take no more outcomes")
    task.status, task.outcome, task.notes, task.values = "done", body.outcome, body.notes, values or None
    task.recorded_by, task.recorded_at = access.principal.id, utcnow()
    await session.commit()
    return CallOutcomeRecorded(task=present(task), rules=rules)


async def measured_values(services: ServicesDep, session: AsyncSession, task: CallTaskRecord,
                          values: dict) -> tuple[dict, dict]:
    """The values as the call step's form reads them, all of them (for the task) and those its rules compare
    (for the workflow's history); 422 for any the form does not have or cannot take."""
    if not values:
        return {}, {}
    enrollment = await session.get(Enrollment, task.enrollment_id)
    deployed = await services.registry.get(enrollment.pathway_id, enrollment.pathway_version)
    try:
        measured = read_call_values(deployed.pathway, task.step_id, values, services.instruments)
        return measured, values_for_rules(deployed.pathway, task.step_id, measured)
    except CallValuesInvalid as invalid:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"message": invalid.message, "errors": invalid.errors}
                            if invalid.errors else invalid.message) from None


async def task_or_404(session: AsyncSession, task_id: str, access: Access) -> CallTaskRecord:
    """The task, if it is for one of the principal's teams or an enrollment they may see; the same 404 either way."""
    task = await session.scalar(select(CallTaskRecord).where(CallTaskRecord.public_id == task_id))
    if task is None or (task.team not in access.principal.teams
                        and not await may_see_enrollment(session, access.principal, task.enrollment_id)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"call task {task_id} not found")
    return task


def present(task: CallTaskRecord) -> CallTaskPublic:
    return CallTaskPublic(
        id=task.public_id, enrollment_id=task.enrollment_id, step_id=task.step_id, occurrence=task.occurrence,
        attempt=task.attempt, team=task.team, script=task.script, status=task.status, due_at=task.due_at,
        outcome=task.outcome, notes=task.notes, values=task.values, recorded_by=task.recorded_by,
        recorded_at=task.recorded_at, link=enrollment_path(task.enrollment_id))
