import logging
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, HTTPException, Response, status
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from api.deps import RegistryDep, SessionDep, SettingsDep, TemporalDep
from api.schemas import (
    AnchorBody,
    CancelBody,
    DeliveryPublic,
    EnrollmentCreate,
    EnrollmentPublic,
    Message,
    PauseBody,
)
from api.security import Access, allow
from language.teams import teams_named
from services import lifecycle
from services.enrollments import EnrollmentConflict, enroll, enrollment_run
from services.principals import Role
from services.receipts import deliveries_of
from services.registry import UnknownPathway
from services.scope import may_see_enrollment, sees_everything
from store.db import Enrollment, Patient, TouchpointRecord
from workflows.contracts import CancelRequest, Timeline, workflow_id_for
from workflows.opening import opening_timeline
from workflows.pathway import PathwayWorkflow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/enrollments", tags=["enrollments"])

# Queries and updates are answered by a worker; without one they would wait for as long as the
# client's default deadline, so the API gives up sooner and says so.
QUERY_TIMEOUT = timedelta(seconds=5)
UPDATE_TIMEOUT = lifecycle.UPDATE_TIMEOUT

Enrolls = Annotated[Access, Depends(allow(Role.CLINICIAN, Role.INTEGRATION))]
Clinician = Annotated[Access, Depends(allow(Role.CLINICIAN))]


@router.post(
    "",
    response_model=EnrollmentPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": EnrollmentPublic, "description": "Replayed: this Idempotency-Key enrolled before."},
        403: {"model": Message, "description": "None of your teams takes part in this pathway."},
        404: {"model": Message, "description": "Unknown patient."},
        409: {"model": Message, "description": "The Idempotency-Key was used for a different enrollment."},
        422: {"description": "Unknown pathway or version, or a malformed field."},
    },
)
async def create_enrollment(
    body: EnrollmentCreate,
    response: Response,
    session: SessionDep,
    temporal: TemporalDep,
    registry: RegistryDep,
    settings: SettingsDep,
    access: Enrolls,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> EnrollmentPublic:
    """Enroll a patient in a pathway and start its schedule; safe to repeat with the same Idempotency-Key.

    A clinician enrolls into pathways one of their teams takes part in; a hospital system into any."""
    # Not scoped: a patient registered a moment ago is followed by nobody until this enrollment.
    patient = await session.get(Patient, body.patient_id)
    if patient is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"patient '{body.patient_id}' not found")
    try:
        deployed = await registry.get(body.pathway_id, body.pathway_version)
    except UnknownPathway as unknown:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(unknown)) from None
    teams = teams_named(deployed.pathway)
    if not sees_everything(access.principal) and not teams & access.principal.teams:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"none of your teams takes part in pathway "
                                                       f"'{deployed.pathway.id}' (its teams: {', '.join(sorted(teams))})")
    try:
        enrolled = await enroll(session, temporal, settings.TASK_QUEUE, patient=patient, pathway=deployed.pathway,
                                anchor=body.anchor, timezone=body.timezone, idempotency_key=idempotency_key)
    except EnrollmentConflict as conflict:
        raise HTTPException(status.HTTP_409_CONFLICT, str(conflict)) from None
    await access.read(session, "enrollment.create" if enrolled.created else "enrollment.read",
                      patient_id=patient.id, enrollment_id=enrolled.enrollment.id)
    if not enrolled.created:
        response.status_code = status.HTTP_200_OK
        return present(enrolled.enrollment, await read_timeline(temporal, enrolled.enrollment))
    # Nothing has happened yet: the plan compiled from the snapshot the workflow started with is its
    # timeline, so the answer never waits on a worker (the start is on the workflow's clock, a moment earlier).
    return present(enrolled.enrollment, opening_timeline(enrollment_run(enrolled.enrollment, deployed.pathway),
                                                         started=datetime.now(UTC)))


@router.get("/{enrollment_id}", response_model=EnrollmentPublic, responses={404: {"model": Message}})
async def read_enrollment(enrollment_id: str, session: SessionDep, temporal: TemporalDep,
                          access: Enrolls) -> EnrollmentPublic:
    """Read an enrollment with its timeline: every touchpoint and what became of it, and each message's
    channel and delivery (the gateway's receipt)."""
    enrollment = await enrollment_or_404(session, enrollment_id, access)
    await access.read(session, "enrollment.read", patient_id=enrollment.patient_id, enrollment_id=enrollment.id)
    return present(enrollment, await read_timeline(temporal, enrollment), await deliveries_of(session, enrollment.id))


@router.post(
    "/{enrollment_id}/cancel",
    response_model=EnrollmentPublic,
    responses={
        404: {"model": Message},
        409: {"model": Message, "description": "The enrollment is already cancelled or has completed."},
        503: {"model": Message, "description": "No worker answered in time."},
    },
)
async def cancel_enrollment(enrollment_id: str, body: CancelBody, session: SessionDep,
                            temporal: TemporalDep, access: Clinician) -> EnrollmentPublic:
    """Cancel an enrollment: every touchpoint not yet started is dropped."""
    enrollment = await enrollment_or_404(session, enrollment_id, access)
    access.reason = access.reason or body.reason
    await access.read(session, "enrollment.cancel", patient_id=enrollment.patient_id, enrollment_id=enrollment.id)
    timeline = await changed(temporal, enrollment, lifecycle.change(
        temporal, enrollment.id, PathwayWorkflow.cancel, CancelRequest(reason=body.reason)))
    return present(enrollment, timeline)


CHANGE_RESPONSES = {
    404: {"model": Message},
    409: {"model": Message, "description": "It cannot apply now (the enrollment has ended, is not paused, ...)."},
    503: {"model": Message, "description": "No worker answered in time."},
}


@router.post("/{enrollment_id}/pause", response_model=EnrollmentPublic, responses=CHANGE_RESPONSES)
async def pause_enrollment(enrollment_id: str, body: PauseBody, session: SessionDep, temporal: TemporalDep,
                           access: Clinician) -> EnrollmentPublic:
    """Pause an enrollment (a readmission): until it resumes nothing reaches the patient; each step's
    `while_paused` says whether what falls due meanwhile is skipped or sent on resume."""
    enrollment = await enrollment_or_404(session, enrollment_id, access)
    access.reason = access.reason or body.reason
    await access.read(session, "enrollment.pause", patient_id=enrollment.patient_id, enrollment_id=enrollment.id)
    timeline = await changed(temporal, enrollment, lifecycle.pause(
        session, temporal, enrollment, reason=body.reason, actor=access.principal.id))
    return present(enrollment, timeline)


@router.post("/{enrollment_id}/resume", response_model=EnrollmentPublic, responses=CHANGE_RESPONSES)
async def resume_enrollment(enrollment_id: str, session: SessionDep, temporal: TemporalDep,
                            access: Clinician) -> EnrollmentPublic:
    """Resume a paused enrollment: its agenda goes on, and what was held for the resume goes now."""
    enrollment = await enrollment_or_404(session, enrollment_id, access)
    await access.read(session, "enrollment.resume", patient_id=enrollment.patient_id, enrollment_id=enrollment.id)
    timeline = await changed(temporal, enrollment, lifecycle.resume(
        session, temporal, enrollment, actor=access.principal.id))
    return present(enrollment, timeline)


@router.post("/{enrollment_id}/anchor", response_model=EnrollmentPublic, responses=CHANGE_RESPONSES)
async def move_enrollment_anchor(enrollment_id: str, body: AnchorBody, session: SessionDep, temporal: TemporalDep,
                                 access: Clinician) -> EnrollmentPublic:
    """Move the anchor (an operation rescheduled): touchpoints not yet sent or opened are recomputed from it;
    what happened stays, and what the new anchor puts in the past is skipped."""
    enrollment = await enrollment_or_404(session, enrollment_id, access)
    access.reason = access.reason or body.reason
    await access.read(session, "enrollment.anchor", patient_id=enrollment.patient_id, enrollment_id=enrollment.id)
    timeline = await changed(temporal, enrollment, lifecycle.move_anchor(
        session, temporal, enrollment, anchor=body.anchor, reason=body.reason, actor=access.principal.id))
    return present(enrollment, timeline)


async def changed(temporal: Client, enrollment: Enrollment, change: Awaitable[Timeline]) -> Timeline:
    """The timeline after a change the workflow accepted; its refusal, in its words, as a 409.

    The audit line is written before: an attempt on patient data is an access too, whatever the answer."""
    try:
        return await change
    except lifecycle.Refused as refused:
        raise HTTPException(status.HTTP_409_CONFLICT, str(refused)) from None
    except lifecycle.Unavailable as unavailable:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(unavailable)) from None
    except lifecycle.NotRunning:
        raise HTTPException(status.HTTP_409_CONFLICT, await _why_not_running(temporal, enrollment)) from None


async def enrollment_or_404(session: SessionDep, enrollment_id: str, access: Access) -> Enrollment:
    """The enrollment, if it exists and the principal may see it; the same 404 either way."""
    enrollment = await session.get(Enrollment, enrollment_id)
    if enrollment is None or not await may_see_enrollment(session, access.principal, enrollment_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"enrollment '{enrollment_id}' not found")
    return enrollment


async def read_timeline(temporal: Client, enrollment: Enrollment) -> Timeline | None:
    """The workflow's own account, also after it has closed; None if it cannot answer now."""
    handle = temporal.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(enrollment.id))
    try:
        return await handle.query(PathwayWorkflow.timeline, rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError) as error:
        log.warning("no timeline for enrollment %s: %s", enrollment.id, type(error).__name__)
        return None


async def _why_not_running(temporal: Client, enrollment: Enrollment) -> str:
    timeline = await read_timeline(temporal, enrollment)
    if timeline is None:
        return "the enrollment's workflow is not running; repeat the enrollment request with its Idempotency-Key to start it"
    # The same words as the workflow's validator uses while it is still open.
    if timeline.status == "completed":
        return "the enrollment has already completed"
    return f"the enrollment is already {timeline.status}"


def present(enrollment: Enrollment, timeline: Timeline | None,
            deliveries: Sequence[TouchpointRecord] = ()) -> EnrollmentPublic:
    """The stored enrollment, with the live status and timeline when the workflow answered."""
    return EnrollmentPublic(
        id=enrollment.id, patient_id=enrollment.patient_id, pathway_id=enrollment.pathway_id,
        pathway_version=enrollment.pathway_version, anchor=enrollment.anchor.astimezone(ZoneInfo(enrollment.timezone)),
        timezone=enrollment.timezone, status=timeline.status if timeline else enrollment.status,
        status_reason=timeline.cancel_reason if timeline else enrollment.status_reason,
        created_at=enrollment.created_at, ended_at=enrollment.ended_at, workflow_id=workflow_id_for(enrollment.id),
        timeline=timeline, deliveries=[DeliveryPublic.model_validate(delivery) for delivery in deliveries],
    )
