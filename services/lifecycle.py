"""Controlling running enrollments: pause, resume, move the anchor (workflows/lifecycle.py), and what an
event in the patient's life does to every enrollment of theirs.

| event        | every enrollment of the patient                                                        |
| ------------ | -------------------------------------------------------------------------------------- |
| `readmitted` | paused (the step's `while_paused` says what becomes of what falls due)                 |
| `discharged` | resumed; with an `anchor`, its touchpoints to come recomputed from it first            |
| `deceased`   | stopped for good at once; the patient is marked so, and can never be enrolled again    |
| `transferred`| ended (cancelled, "transferred: <reason>"): another provider follows the patient now  |
| `withdrew`   | ended (cancelled, "patient withdrew: <reason>"), as withdrawing consent does            |

The workflow decides whether a change applies (its validators' words are the answer); the database
rows follow what it accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from language.plan import anchor_instant
from store.db import Enrollment, Patient, utcnow
from workflows.contracts import (
    AnchorMove,
    CancelRequest,
    PauseRequest,
    ResumeRequest,
    StopForGood,
    Timeline,
    workflow_id_for,
)
from workflows.pathway import PathwayWorkflow

# Updates are answered by a worker; without one they would wait as long as the client's default deadline.
UPDATE_TIMEOUT = timedelta(seconds=10)
PATIENT_DIED = "the patient has died"
UNANSWERED = "its workflow did not answer in time"
NOT_RUNNING = "its workflow is not running"

PatientEventType = Literal["readmitted", "discharged", "deceased", "transferred", "withdrew"]


class Refused(Exception):
    """The enrollment's workflow refused the change; the message says why."""


class NotRunning(Exception):
    """The enrollment's workflow has closed (or never started)."""


class Unavailable(Exception):
    """No worker answered in time: whether the change applied is unknown until the enrollment is read."""


class PatientDeceased(Exception):
    """The patient is recorded as deceased: nothing may start for them again."""


async def change(temporal: Client, enrollment_id: str, update, request) -> Timeline:
    """Run one of PathwayWorkflow's updates on the enrollment, its refusals turned into our exceptions."""
    handle = temporal.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(enrollment_id))
    try:
        return await handle.execute_update(update, request, rpc_timeout=UPDATE_TIMEOUT)
    except WorkflowUpdateFailedError as refused:
        cause = refused.cause
        raise Refused(cause.message if isinstance(cause, ApplicationError) else str(refused)) from None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise Unavailable("the enrollment's workflow did not answer in time; read the enrollment before "
                          "retrying") from None
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        raise NotRunning(enrollment_id) from None


async def pause(session: AsyncSession, temporal: Client, enrollment: Enrollment, *, reason: str,
                actor: str) -> Timeline:
    timeline = await change(temporal, enrollment.id, PathwayWorkflow.pause, PauseRequest(reason=reason, actor=actor))
    enrollment.paused_at = timeline.paused.since if timeline.paused else utcnow()
    await session.commit()
    return timeline


async def resume(session: AsyncSession, temporal: Client, enrollment: Enrollment, *, actor: str) -> Timeline:
    timeline = await change(temporal, enrollment.id, PathwayWorkflow.resume, ResumeRequest(actor=actor))
    enrollment.paused_at = None
    await session.commit()
    return timeline


async def move_anchor(session: AsyncSession, temporal: Client, enrollment: Enrollment, *, anchor: date | datetime,
                      reason: str, actor: str) -> Timeline:
    """A date means the start of that day in the enrollment's time zone, as when enrolling."""
    moved = anchor_instant(anchor, enrollment.timezone)
    timeline = await change(temporal, enrollment.id, PathwayWorkflow.move_anchor,
                            AnchorMove(anchor=moved, reason=reason, actor=actor))
    enrollment.anchor = moved
    await session.commit()
    return timeline


@dataclass(frozen=True)
class Outcome:
    """What an event did to one enrollment: the changes (in the audit's words), or why there were none."""

    enrollment_id: str
    changes: tuple[str, ...] = ()
    unchanged: str | None = None

    @property
    def unanswered(self) -> bool:
        """Its workflow did not answer in time: whether it changed is unknown, and a repeat is safe."""
        return self.unchanged == UNANSWERED


async def end_all_enrollments(session: AsyncSession, temporal: Client, patient: Patient, reason: str) -> list[Outcome]:
    """Cancel every active enrollment of the patient (a transfer, a withdrawal of consent) with `reason`.
    A row whose workflow never started is ended here, so the reconciler never starts one."""
    outcomes = []
    for enrollment in await _active(session, patient):
        outcome = await _apply(temporal, enrollment, "enrollment.cancel", PathwayWorkflow.cancel,
                               CancelRequest(reason=reason))
        if outcome.unchanged == NOT_RUNNING:
            enrollment.status, enrollment.status_reason, enrollment.ended_at = "cancelled", reason, utcnow()
            await session.commit()
            outcome = Outcome(enrollment.id, ("enrollment.cancel",))
        outcomes.append(outcome)
    return outcomes


async def record_patient_event(session: AsyncSession, temporal: Client, patient: Patient, kind: PatientEventType, *,
                               actor: str, reason: str | None = None, anchor: date | datetime | None = None,
                               occurred_at: datetime | None = None) -> list[Outcome]:
    """Apply the event to every enrollment it concerns; a repeat changes nothing more (safe to retry).

    Raises PatientDeceased for any event but `deceased` once the patient is recorded dead. An enrollment
    whose workflow did not answer is `unanswered` in the outcomes; the others are changed all the same."""
    if patient.deceased_at is not None and kind != "deceased":
        raise PatientDeceased(f"patient '{patient.id}' is recorded as deceased; no event changes their enrollments")
    why = f": {reason}" if reason else ""
    match kind:
        case "readmitted":
            outcomes = [await _paused(session, temporal, enrollment, f"readmitted{why}", actor)
                        for enrollment in await _active(session, patient)]
        case "discharged":
            outcomes = [await _discharged(session, temporal, enrollment, anchor, f"discharged{why}", actor)
                        for enrollment in await _active(session, patient)]
        case "deceased":
            outcomes = await _deceased(session, temporal, patient, occurred_at, actor)
        case "transferred":
            outcomes = await end_all_enrollments(session, temporal, patient, f"transferred{why or ' to another provider'}")
        case "withdrew":
            outcomes = await end_all_enrollments(session, temporal, patient, f"patient withdrew{why}")
    return outcomes


async def _active(session: AsyncSession, patient: Patient) -> list[Enrollment]:
    return list(await session.scalars(select(Enrollment).where(
        Enrollment.patient_id == patient.id, Enrollment.status == "active").order_by(Enrollment.created_at)))


async def _apply(temporal: Client, enrollment: Enrollment, action: str, update, request) -> Outcome:
    try:
        await change(temporal, enrollment.id, update, request)
    except Refused as refused:
        return Outcome(enrollment.id, unchanged=str(refused))
    except NotRunning:
        return Outcome(enrollment.id, unchanged=NOT_RUNNING)
    except Unavailable:
        return Outcome(enrollment.id, unchanged=UNANSWERED)
    return Outcome(enrollment.id, (action,))


async def _paused(session: AsyncSession, temporal: Client, enrollment: Enrollment, reason: str, actor: str) -> Outcome:
    outcome = await _apply(temporal, enrollment, "enrollment.pause", PathwayWorkflow.pause,
                           PauseRequest(reason=reason, actor=actor))
    if outcome.changes:
        enrollment.paused_at = utcnow()
        await session.commit()
    return outcome


async def _discharged(session: AsyncSession, temporal: Client, enrollment: Enrollment, anchor: date | datetime | None, reason: str,
                      actor: str) -> Outcome:
    """Re-anchor first, so that what the pause held and the new plan replaces does not go on resume."""
    moved = Outcome(enrollment.id)
    if anchor is not None:
        new_anchor = anchor_instant(anchor, enrollment.timezone)
        moved = await _apply(temporal, enrollment, "enrollment.anchor", PathwayWorkflow.move_anchor,
                             AnchorMove(anchor=new_anchor, reason=reason, actor=actor))
        if moved.changes:
            enrollment.anchor = new_anchor
    resumed = await _apply(temporal, enrollment, "enrollment.resume", PathwayWorkflow.resume,
                           ResumeRequest(actor=actor))
    if resumed.changes:
        enrollment.paused_at = None
    await session.commit()
    changes = moved.changes + resumed.changes
    if UNANSWERED in (moved.unchanged, resumed.unchanged):
        return Outcome(enrollment.id, changes, UNANSWERED)
    return Outcome(enrollment.id, changes, None if changes else resumed.unchanged)


async def _deceased(session: AsyncSession, temporal: Client, patient: Patient, occurred_at: datetime | None,
                    actor: str) -> list[Outcome]:
    """Recorded first: from that commit on, the delivery activity refuses every message to the patient, even
    one of a workflow that cannot be reached now. Every enrollment ever made is asked, for one that has
    ended may still be delivering what a rule decided."""
    if patient.deceased_at is None:
        patient.deceased_at = occurred_at or utcnow()
        await session.commit()
    enrollments = await session.scalars(select(Enrollment).where(Enrollment.patient_id == patient.id)
                                        .order_by(Enrollment.created_at))
    return [await _apply(temporal, enrollment, "enrollment.stop", PathwayWorkflow.stop_for_good,
                         StopForGood(reason=PATIENT_DIED, actor=actor)) for enrollment in enrollments]
