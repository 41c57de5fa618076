"""Events in a patient's life that change every enrollment of theirs (services/lifecycle.py)."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status

from api.deps import SessionDep, TemporalDep
from api.routes.patients import patient_or_404
from api.schemas import EnrollmentChange, Message, PatientEventBody, PatientEventResult
from api.security import Access, allow
from services import lifecycle
from services.principals import Role

router = APIRouter(prefix="/patients", tags=["patients"])

# Staff on the ward, and the hospital system's admission/discharge/death messages.
Reports = Annotated[Access, Depends(allow(Role.CLINICIAN, Role.INTEGRATION))]


@router.post(
    "/{patient_id}/events",
    response_model=PatientEventResult,
    responses={
        404: {"model": Message},
        409: {"model": Message, "description": "The patient is recorded as deceased."},
        422: {"description": "An unknown type, or a field the type does not take."},
        503: {"model": Message, "description": "Some enrollment's workflow did not answer; repeating is safe."},
    },
)
async def record_patient_event(patient_id: str, body: PatientEventBody, session: SessionDep, temporal: TemporalDep,
                               access: Reports) -> PatientEventResult:
    """Record a readmission (pause every enrollment), a discharge (resume, or re-anchor and resume), a death
    (stop every enrollment for good), a transfer or a withdrawal (end every enrollment); safe to repeat."""
    patient = await patient_or_404(session, patient_id, access)
    access.reason = access.reason or body.reason
    await access.read(session, f"patient.event.{body.type}", patient_id=patient.id)
    try:
        outcomes = await lifecycle.record_patient_event(
            session, temporal, patient, body.type, actor=access.principal.id, reason=body.reason, anchor=body.anchor,
            occurred_at=body.occurred_at)
    except lifecycle.PatientDeceased as deceased:
        raise HTTPException(status.HTTP_409_CONFLICT, str(deceased)) from None
    for outcome in outcomes:
        for change in outcome.changes:
            await access.record(session, change, patient_id=patient.id, enrollment_id=outcome.enrollment_id,
                                target=body.type)
    await session.commit()
    if unanswered := [outcome.enrollment_id for outcome in outcomes if outcome.unanswered]:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"the workflows of enrollments {', '.join(unanswered)} did not answer in time; the others "
                            "are changed, and repeating the event is safe")
    return PatientEventResult(patient_id=patient.id, type=body.type, enrollments=[
        EnrollmentChange(enrollment_id=o.enrollment_id, changes=list(o.changes), unchanged=o.unchanged)
        for o in outcomes])
