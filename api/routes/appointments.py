"""Attendance at appointment steps: staff record whether the patient came to a visit.

The workflow decides (a missed visit opens its call); a refusal is a 409 in the workflow's words,
naming the visit. Every recording is audited, allowed or refused, like any change to patient data.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from api.deps import SessionDep, TemporalDep
from api.routes.enrollments import UPDATE_TIMEOUT, enrollment_or_404
from api.routes.escalations import workflow_update
from api.schemas import Message
from api.security import Access, allow
from services.principals import Role
from workflows.contracts import AttendanceReport, RuleOutcome, workflow_id_for
from workflows.pathway import PathwayWorkflow

router = APIRouter(prefix="/enrollments", tags=["appointments"])
Clinician = Annotated[Access, Depends(allow(Role.CLINICIAN))]


class AttendanceBody(BaseModel):
    outcome: Literal["attended", "missed"] = Field(description="whether the patient came", examples=["missed"])


@router.post(
    "/{enrollment_id}/appointments/{step_id}/{occurrence}/attendance",
    response_model=RuleOutcome,
    responses={
        404: {"model": Message},
        409: {"model": Message, "description": "The visit's time has not come, it is already recorded, or the "
                                               "enrollment has ended."},
        503: {"model": Message, "description": "No worker answered in time."},
    },
)
async def record_attendance(enrollment_id: str, step_id: str, occurrence: Annotated[int, Path(ge=1)],
                            body: AttendanceBody, session: SessionDep, temporal: TemporalDep,
                            access: Clinician) -> RuleOutcome:
    """Record whether the patient came to a visit; what a missed one does (its call) happens at once."""
    enrollment = await enrollment_or_404(session, enrollment_id, access)
    await access.read(session, "appointment.attendance", patient_id=enrollment.patient_id,
                      enrollment_id=enrollment.id, target=f"{step_id}#{occurrence} {body.outcome}")
    handle = temporal.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(enrollment.id))
    report = AttendanceReport(step_id=step_id, occurrence=occurrence, outcome=body.outcome,
                              recorded_by=access.principal.id)
    return await workflow_update(
        handle.execute_update(PathwayWorkflow.record_attendance, report, rpc_timeout=UPDATE_TIMEOUT),
        f"the enrollment {enrollment.id} has ended; its appointments take no more attendance")
