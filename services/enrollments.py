"""Enrolling a patient: the database record first, then the workflow, safe to repeat at any point."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from language.model import Pathway
from language.plan import anchor_instant
from language.teams import teams_named
from store.db import Enrollment, EnrollmentTeam, Patient
from workflows.contracts import EnrollmentRun, workflow_id_for
from workflows.pathway import PathwayWorkflow


@dataclass(frozen=True)
class Enrolled:
    enrollment: Enrollment
    created: bool
    workflow: WorkflowHandle


# Without it a start would wait as long as the client's default deadline while Temporal is slow or away;
# past it the API answers 503 (api/overload.py) and a repeat with the Idempotency-Key starts the workflow.
START_TIMEOUT = timedelta(seconds=10)


class EnrollmentConflict(Exception):
    """The idempotency key was used before for a different request."""


async def enroll(session: AsyncSession, client: Client, task_queue: str, *, patient: Patient, pathway: Pathway,
                 anchor: date | datetime, timezone: str | None = None,
                 idempotency_key: str | None = None) -> Enrolled:
    """Create (or find again) an enrollment and make sure its workflow runs.

    If the process dies between the commit and the workflow start, repeating the request with the
    same key starts the workflow; a workflow already running under the enrollment's id is kept.
    """
    zone = timezone or patient.timezone or pathway.timezone
    fingerprint = hashlib.sha256(json.dumps(
        [patient.id, pathway.id, pathway.version, anchor.isoformat(), zone]).encode()).hexdigest()
    enrollment = None
    if idempotency_key:
        enrollment = await session.scalar(select(Enrollment).where(Enrollment.idempotency_key == idempotency_key))
        if enrollment is not None and enrollment.request_fingerprint != fingerprint:
            raise EnrollmentConflict(f"idempotency key '{idempotency_key}' was already used for a different enrollment")
    created = enrollment is None
    if created and patient.deceased_at is not None:
        raise EnrollmentConflict(f"patient '{patient.id}' is recorded as deceased and cannot be enrolled")
    if created:
        enrollment = Enrollment(patient_id=patient.id, pathway_id=pathway.id, pathway_version=pathway.version,
                                anchor=anchor_instant(anchor, zone), timezone=zone,
                                idempotency_key=idempotency_key, request_fingerprint=fingerprint)
        session.add(enrollment)
        try:
            await session.flush()
            # Who may see it: the teams its pathway names (see services/scope.py).
            session.add_all(EnrollmentTeam(enrollment_id=enrollment.id, team_id=team) for team in teams_named(pathway))
            await session.commit()
        except IntegrityError:
            # The same new key from two requests at once: the other one won; answer as a replay.
            await session.rollback()
            return await enroll(session, client, task_queue, patient=patient, pathway=pathway, anchor=anchor,
                                timezone=timezone, idempotency_key=idempotency_key)
    return Enrolled(enrollment, created, await start_workflow(client, task_queue, enrollment, pathway))


def enrollment_run(enrollment: Enrollment, pathway: Pathway) -> EnrollmentRun:
    """The input of the enrollment's first run."""
    return EnrollmentRun(enrollment_id=enrollment.id, pathway=pathway, anchor=enrollment.anchor,
                         timezone=enrollment.timezone)


async def start_workflow(client: Client, task_queue: str, enrollment: Enrollment, pathway: Pathway) -> WorkflowHandle:
    # One enrollment, one run, ever: a repeated request joins the running workflow, and never
    # restarts one that has already finished.
    try:
        return await client.start_workflow(
            PathwayWorkflow.run,
            enrollment_run(enrollment, pathway),
            id=workflow_id_for(enrollment.id),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            rpc_timeout=START_TIMEOUT,
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle(workflow_id_for(enrollment.id))
