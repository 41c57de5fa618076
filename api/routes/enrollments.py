import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, HTTPException, Response, status
from temporalio.client import (
    Client,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import RegistryDep, SessionDep, SettingsDep, TemporalDep
from api.schemas import CancelBody, EnrollmentCreate, EnrollmentPublic, Message
from api.security import Access, allow
from language.teams import teams_named
from services.enrollments import EnrollmentConflict, enroll, enrollment_run
from services.principals import Role
from services.registry import UnknownPathway
from services.scope import may_see_enrollment, sees_everything
from store.db import Enrollment, Patient
from workflows.contracts import CancelRequest, Timeline, workflow_id_for
from workflows.opening import opening_timeline
from workflows.pathway import PathwayWorkflow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/enrollments", tags=["enrollments"])

# Queries and updates are answered by a worker; without one they would wait for as long as the
# client's default deadline, so the API gives up sooner and says so.
QUERY_TIMEOUT = timedelta(seconds=5)
UPDATE_TIMEOUT = timedelta(seconds=10)

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
    """Read an enrollment with its timeline: every touchpoint and what became of it."""
    enrollment = await enrollment_or_404(session, enrollment_id, access)
    await access.read(session, "enrollment.read", patient_id=enrollment.patient_id, enrollment_id=enrollment.id)
    return present(enrollment, await read_timeline(temporal, enrollment))


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
    # Recorded as asked, whatever the workflow answers: an attempt on patient data is an access too.
    access.reason = access.reason or body.reason
    await access.read(session, "enrollment.cancel", patient_id=enrollment.patient_id, enrollment_id=enrollment.id)
    handle = temporal.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(enrollment.id))
    try:
        timeline = await handle.execute_update(PathwayWorkflow.cancel, CancelRequest(reason=body.reason),
                                               rpc_timeout=UPDATE_TIMEOUT)
    except WorkflowUpdateFailedError as refused:
        # The workflow's validator said no; its message is the answer.
        cause = refused.cause
        raise HTTPException(status.HTTP_409_CONFLICT,
                            cause.message if isinstance(cause, ApplicationError) else str(refused)) from None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "the enrollment's workflow did not answer in time; read the enrollment before retrying") from None
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        raise HTTPException(status.HTTP_409_CONFLICT, await _why_not_running(temporal, enrollment)) from None
    return present(enrollment, timeline)


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


def present(enrollment: Enrollment, timeline: Timeline | None) -> EnrollmentPublic:
    """The stored enrollment, with the live status and timeline when the workflow answered."""
    return EnrollmentPublic(
        id=enrollment.id, patient_id=enrollment.patient_id, pathway_id=enrollment.pathway_id,
        pathway_version=enrollment.pathway_version, anchor=enrollment.anchor.astimezone(ZoneInfo(enrollment.timezone)),
        timezone=enrollment.timezone, status=timeline.status if timeline else enrollment.status,
        status_reason=timeline.cancel_reason if timeline else enrollment.status_reason,
        created_at=enrollment.created_at, ended_at=enrollment.ended_at, workflow_id=workflow_id_for(enrollment.id),
        timeline=timeline,
    )
