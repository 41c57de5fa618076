"""Attendance at appointment steps: staff record whether the patient came to a visit, or the hospital's
video service reports it, signed (HMAC-SHA256 of "<timestamp>.<body>" with VIDEO_SERVICE_SECRET, as the
channels' receipts are).

The workflow decides (a missed visit opens its call); a refusal is a 409 in the workflow's words,
naming the visit. Every recording is audited, allowed or refused, like any change to patient data.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, Field, ValidationError

from api.deps import ServicesDep, SessionDep, TemporalDep
from api.routes.enrollments import UPDATE_TIMEOUT, enrollment_or_404
from api.routes.escalations import workflow_update
from api.schemas import Message
from api.security import Access, allow, audit_row, public
from services.gateway_signatures import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    webhook_signature_valid,
)
from services.principals import Role
from store.db import Enrollment
from workflows.contracts import AttendanceReport, RuleOutcome, workflow_id_for
from workflows.pathway import PathwayWorkflow

router = APIRouter(prefix="/enrollments", tags=["appointments"])
service_router = APIRouter(prefix="/appointments", tags=["appointments"], dependencies=[Depends(public)])
Clinician = Annotated[Access, Depends(allow(Role.CLINICIAN))]
VIDEO_SERVICE = "video-service"


class AttendanceBody(BaseModel):
    outcome: Literal["attended", "missed"] = Field(description="whether the patient came", examples=["missed"])


class ServiceAttendance(AttendanceBody):
    """What the video service reports about one visit: the ids the step's link gave it."""

    enrollment_id: str = Field(min_length=1, max_length=64, examples=["en_3f2a9c"])
    step_id: str = Field(min_length=1, max_length=64, examples=["video-follow-up"])
    occurrence: int = Field(ge=1, examples=[1])


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


@service_router.post(
    "/attendance",
    response_model=RuleOutcome,
    responses={
        403: {"model": Message, "description": "The signature does not verify (audited)."},
        404: {"model": Message},
        409: {"model": Message, "description": "Not yet the visit's time, already recorded, or the enrollment ended."},
    },
)
async def video_service_attendance(request: Request, services: ServicesDep, temporal: TemporalDep) -> RuleOutcome:
    """Attendance reported by the hospital's video service, signed with the shared secret."""
    body = await request.body()
    secret = services.settings.VIDEO_SERVICE_SECRET
    client_ip = request.client.host if request.client else None
    signed = secret is not None and webhook_signature_valid(
        secret.get_secret_value(), request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER), body)
    try:
        report = ServiceAttendance.model_validate_json(body) if signed else None
    except ValidationError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            error.errors(include_url=False, include_input=False)) from None
    async with services.sessions() as session:
        enrollment = await session.get(Enrollment, report.enrollment_id) if report else None
        session.add(audit_row(None, client_ip, None, "appointment.attendance", actor_kind="gateway",
                              outcome="allowed" if signed else "denied",
                              patient_id=enrollment.patient_id if enrollment else None,
                              enrollment_id=enrollment.id if enrollment else None,
                              target=f"{report.step_id}#{report.occurrence} {report.outcome}" if report else None))
        await session.commit()
    if not signed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the attendance report's signature does not verify")
    if enrollment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"enrollment '{report.enrollment_id}' not found")
    handle = temporal.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(enrollment.id))
    attendance = AttendanceReport(step_id=report.step_id, occurrence=report.occurrence, outcome=report.outcome,
                                  recorded_by=VIDEO_SERVICE)
    return await workflow_update(
        handle.execute_update(PathwayWorkflow.record_attendance, attendance, rpc_timeout=UPDATE_TIMEOUT),
        f"the enrollment {enrollment.id} has ended; its appointments take no more attendance")
