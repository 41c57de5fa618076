"""Events into running enrollments: a hospital system sends a lab result, or staff a clinic reading.

The event is checked against the pathway, handed to the enrollment's workflow (only the values its
rules compare), then stored with every value and note. The update's id is the event's, derived from
the Idempotency-Key, so a retry after a lost answer is the same update: applied once.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Response, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.deps import RegistryDep, SessionDep, TemporalDep
from api.routes.enrollments import UPDATE_TIMEOUT, enrollment_or_404
from api.routes.escalations import workflow_update
from api.schemas import EnrollmentEventPublic, EventCreate, Message
from api.security import Access, allow
from language.events import EventInvalid, values_for_rules
from services.principals import Role
from store.db import EnrollmentEventRecord, utcnow
from workflows.contracts import EnrollmentEvent, workflow_id_for
from workflows.pathway import PathwayWorkflow

router = APIRouter(prefix="/enrollments", tags=["events"])
Sends = Annotated[Access, Depends(allow(Role.CLINICIAN, Role.INTEGRATION))]
# Clocks differ a little between systems; an event further in the future is a mistake.
CLOCK_SKEW = timedelta(minutes=5)


def event_id_for(enrollment_id: str, idempotency_key: str) -> str:
    return "ev_" + hashlib.sha256(f"{enrollment_id}\n{idempotency_key}".encode()).hexdigest()[:24]


@router.post(
    "/{enrollment_id}/events",
    response_model=EnrollmentEventPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": EnrollmentEventPublic, "description": "Replayed: this Idempotency-Key sent the event before."},
        404: {"model": Message},
        409: {"model": Message, "description": "The enrollment has ended, or the Idempotency-Key was used for "
                                               "another event."},
        422: {"description": "An event the pathway does not declare, or values that do not fit it (each field named)."},
        503: {"model": Message, "description": "No worker answered in time."},
    },
)
async def send_event(enrollment_id: str, body: EventCreate, response: Response, session: SessionDep,
                     temporal: TemporalDep, registry: RegistryDep, access: Sends,
                     idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
                     ) -> EnrollmentEventPublic:
    """Send an event (a lab result) into an enrollment: its pathway's on_event rules act on it; safe to repeat
    with the same Idempotency-Key."""
    enrollment = await enrollment_or_404(session, enrollment_id, access)
    key = idempotency_key or uuid.uuid4().hex
    event_id = event_id_for(enrollment.id, key)
    await access.read(session, "enrollment.event", patient_id=enrollment.patient_id, enrollment_id=enrollment.id,
                      target=event_id)
    stored = await session.scalar(select(EnrollmentEventRecord).where(EnrollmentEventRecord.public_id == event_id))
    if stored is not None:
        if (stored.type, stored.values, stored.occurred_at) != (body.type, body.values, body.occurred_at):
            raise HTTPException(status.HTTP_409_CONFLICT, "this Idempotency-Key was used for another event")
        response.status_code = status.HTTP_200_OK
        return present(stored)
    if body.occurred_at > datetime.now(UTC) + CLOCK_SKEW:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            {"message": "the event has not happened yet", "errors": {"occurred_at": "in the future"}})
    pathway = (await registry.get(enrollment.pathway_id, enrollment.pathway_version)).pathway
    try:
        for_rules = values_for_rules(pathway, body.type, body.values)
    except EventInvalid as invalid:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"message": invalid.message, "errors": invalid.errors}
                            if invalid.errors else invalid.message) from None
    # End the read before the update: SQLite will not turn a stale read transaction into a write.
    await session.commit()
    handle = temporal.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(enrollment.id))
    outcome = await workflow_update(
        handle.execute_update(PathwayWorkflow.record_event,
                              EnrollmentEvent(event_id=event_id, type=body.type, values=for_rules),
                              id=event_id, rpc_timeout=UPDATE_TIMEOUT),
        f"the enrollment {enrollment.id} has ended; it takes no more events")
    stored = EnrollmentEventRecord(public_id=event_id, enrollment_id=enrollment.id, idempotency_key=key,
                                   type=body.type, values=body.values, occurred_at=body.occurred_at,
                                   received_at=utcnow(), recorded_by=access.principal.id,
                                   outcome=outcome.model_dump(mode="json"))
    session.add(stored)
    try:
        await session.commit()
    except IntegrityError:  # the same request twice at once: one update (its id), and the other's row
        await session.rollback()
        stored = await session.scalar(select(EnrollmentEventRecord).where(EnrollmentEventRecord.public_id == event_id))
    return present(stored)


@router.get("/{enrollment_id}/events", response_model=list[EnrollmentEventPublic],
            responses={404: {"model": Message}})
async def list_events(enrollment_id: str, session: SessionDep, access: Sends) -> list[EnrollmentEventPublic]:
    """List the events sent into an enrollment, the latest first, with every value and what the rules did."""
    enrollment = await enrollment_or_404(session, enrollment_id, access)
    await access.read(session, "enrollment.events", patient_id=enrollment.patient_id, enrollment_id=enrollment.id)
    events = await session.scalars(select(EnrollmentEventRecord).where(EnrollmentEventRecord.enrollment_id ==
                                                                       enrollment.id)
                                   .order_by(EnrollmentEventRecord.received_at.desc(), EnrollmentEventRecord.id.desc()))
    return [present(event) for event in events]


def present(event: EnrollmentEventRecord) -> EnrollmentEventPublic:
    return EnrollmentEventPublic(id=event.public_id, enrollment_id=event.enrollment_id, type=event.type,
                                 values=event.values, occurred_at=event.occurred_at, received_at=event.received_at,
                                 recorded_by=event.recorded_by, outcome=event.outcome)
