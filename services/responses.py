"""Taking a questionnaire response: from the patient's form, from staff on the phone, or a scenario.

The answers are validated against the instrument, stored (they never leave the database), scored,
and handed to the workflow as an Update carrying only the score, band, flags and the item values that
the step's rules read (language/reads.py): the Update stays in Temporal's history. The workflow's
validator is the authority on whether the occurrence is still open. A response stored while the
workflow cannot be reached waits `received` in the database, the outbox, for the reconciler.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from language.instruments.model import Instrument
from language.instruments.scoring import AnswersInvalid, score
from language.model import Pathway
from language.plan import touchpoint_key
from language.reads import values_read
from store.db import QuestionnaireRecord, ResponseRecord, utcnow
from workflows.contracts import (
    ResponseSubmission,
    RuleOutcome,
    workflow_id_for,
)
from workflows.pathway import PathwayWorkflow

log = logging.getLogger(__name__)

# An update is answered by a worker, a history read by the server: bounded, so a patient waits seconds,
# not the default deadline, before their stored response is acknowledged and left to the outbox.
UPDATE_TIMEOUT = timedelta(seconds=10)
QUERY_TIMEOUT = timedelta(seconds=5)
# Temporal not answering in time (CANCELLED: our own rpc_timeout, as the client reports it for a query no
# worker answers), not reachable, or refusing for its own load: the workflow may be fine.
UNREACHABLE = frozenset({RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE,
                         RPCStatusCode.RESOURCE_EXHAUSTED})


class QuestionnaireClosed(Exception):
    """Not open for answers: `why` is answered, expired, ended (the enrollment ended first) or not-open."""

    def __init__(self, message: str, why: str = "not-open"):
        super().__init__(message)
        self.why = why


@dataclass(frozen=True)
class Accepted:
    response_id: str
    # None: stored and acknowledged, but the workflow could not be reached; it gets it later (the outbox).
    outcome: RuleOutcome | None


async def open_questionnaire(session: AsyncSession, enrollment_id: str, step_id: str,
                             occurrence: int) -> QuestionnaireRecord:
    """The occurrence if it can still be answered; QuestionnaireClosed otherwise."""
    record = await session.scalar(select(QuestionnaireRecord).where(
        QuestionnaireRecord.enrollment_id == enrollment_id, QuestionnaireRecord.step_id == step_id,
        QuestionnaireRecord.occurrence == occurrence))
    if record is None:
        raise QuestionnaireClosed("this questionnaire is not open")
    if record.status == "answered" or await session.scalar(select(ResponseRecord.id).where(
            ResponseRecord.questionnaire_id == record.id, ResponseRecord.status == "received").limit(1)):
        raise QuestionnaireClosed("this questionnaire has already been answered", "answered")
    if record.status == "closed":
        raise QuestionnaireClosed(f"this questionnaire has closed: the enrollment ended ({record.closed_reason})",
                                  "ended")
    if record.status == "expired" or utcnow() >= record.expires_at:
        raise QuestionnaireClosed("this questionnaire has closed", "expired")
    return record


async def submit_response(sessions: async_sessionmaker[AsyncSession], client: Client,
                          instruments: Mapping[str, Instrument], *, enrollment_id: str, step_id: str,
                          occurrence: int, answers: dict, source: str, entered_by: str | None = None,
                          pathway: Pathway | None = None) -> Accepted:
    """Validate, store, score and deliver a response to the workflow.

    The response is stored before the workflow is told, so nothing is lost in between: if the workflow
    cannot be reached (Temporal down, no worker to answer in UPDATE_TIMEOUT), the response stays
    `received`, is acknowledged without an outcome, and the reconciler delivers it later (the outbox).
    A refusal by the workflow is stored as `refused`.
    `pathway`: the enrollment's pathway if the caller has it; otherwise the workflow's own snapshot is read.
    """
    async with sessions.begin() as session:
        questionnaire = await open_questionnaire(session, enrollment_id, step_id, occurrence)
        instrument = instruments[questionnaire.instrument_id]
        errors = instrument.validate_answers(answers)
        if errors:
            raise AnswersInvalid(errors)
        result = score(instrument, answers)
        response = ResponseRecord(questionnaire_id=questionnaire.id, instrument_id=instrument.id, answers=answers,
                                  score=result.total, band=result.band, flags=list(result.flags), source=source,
                                  entered_by=entered_by, status="received")
        session.add(response)
    try:
        outcome = await deliver(sessions, client, instrument, questionnaire, response, pathway)
    except WorkflowUnreachable as unreachable:
        log.warning("response %s stored; its workflow is unreachable (%s): the outbox delivers it later",
                    response.id, unreachable)
        return Accepted(response.id, None)
    return Accepted(response.id, outcome)


class WorkflowUnreachable(Exception):
    """Temporal did not answer, or no worker took the update in time: try again later."""


async def deliver(sessions: async_sessionmaker[AsyncSession], client: Client, instrument: Instrument,
                  questionnaire: QuestionnaireRecord, response: ResponseRecord,
                  pathway: Pathway | None = None) -> RuleOutcome:
    """Hand a stored response to its workflow and store what came of it; QuestionnaireClosed if refused.

    Idempotent: the update's id is the response's, so a second delivery (the outbox after a request
    that timed out while the workflow was taking it) joins the first and gets the same outcome."""
    workflow = client.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(questionnaire.enrollment_id))
    result = score(instrument, response.answers)
    try:
        pathway = pathway or await enrolled_pathway(client, questionnaire.enrollment_id, questionnaire.step_id,
                                                    questionnaire.occurrence)
        outcome = await workflow.execute_update(
            PathwayWorkflow.submit_response,
            ResponseSubmission(step_id=questionnaire.step_id, occurrence=questionnaire.occurrence,
                               response_id=response.id, received_at=response.submitted_at, score=result.total,
                               band=result.band, flags=list(result.flags),
                               items=values_read(pathway, questionnaire.step_id, result.items),
                               has_free_text=any(item.kind == "free_text"
                                                 and str(response.answers.get(item.id) or "").strip()
                                                 for item in instrument.items)),
            id=response.id, rpc_timeout=UPDATE_TIMEOUT,
        )
    except WorkflowUpdateFailedError as refused:
        await _finish(sessions, response.id, questionnaire.id, status="refused")
        message = getattr(refused.cause, "message", None) or "this questionnaire is not open"
        raise QuestionnaireClosed(message, _why_refused(message)) from None
    except RPCTimeoutOrCancelledError as timed_out:
        raise WorkflowUnreachable(str(timed_out) or type(timed_out).__name__) from timed_out
    except RPCError as error:
        if error.status in UNREACHABLE:
            raise WorkflowUnreachable(f"{error.status.name}: {error.message}") from error
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        # The workflow ended between our read and the update; its record of the end may still be on its way.
        await _finish(sessions, response.id, questionnaire.id, status="refused")
        raise QuestionnaireClosed("this questionnaire has closed: the enrollment has ended", "ended") from None
    await _finish(sessions, response.id, questionnaire.id, status="accepted", outcome=outcome.model_dump())
    return outcome


async def deliver_received(sessions: async_sessionmaker[AsyncSession], client: Client,
                           instruments: Mapping[str, Instrument], *, older_than: timedelta) -> tuple[int, int]:
    """The outbox: deliver every response still `received` after `older_than` (younger ones may still
    be in their own request); (accepted, refused). WorkflowUnreachable stops the pass: nothing changes."""
    async with sessions() as session:
        waiting = (await session.execute(
            select(ResponseRecord, QuestionnaireRecord).join(QuestionnaireRecord)
            .where(ResponseRecord.status == "received", ResponseRecord.submitted_at < utcnow() - older_than)
            .order_by(ResponseRecord.submitted_at, ResponseRecord.id))).all()
    accepted = refused = 0
    for response, questionnaire in waiting:
        try:
            await deliver(sessions, client, instruments[response.instrument_id], questionnaire, response)
            accepted += 1
        except QuestionnaireClosed as closed:
            log.warning("response %s, received while its questionnaire was open, was refused: %s", response.id, closed)
            refused += 1
    return accepted, refused


async def enrolled_pathway(client: Client, enrollment_id: str, step_id: str, occurrence: int) -> Pathway:
    """The pathway whose rules this occurrence follows, as the enrollment's workflow runs it: its version, or
    the one it began under if a migration found it in progress. RPCError NOT_FOUND if there is no workflow."""
    handle = client.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(enrollment_id))
    return await handle.query(PathwayWorkflow.rules_pathway, touchpoint_key(step_id, occurrence),
                              rpc_timeout=QUERY_TIMEOUT)


def _why_refused(message: str) -> str:
    """The workflow's validator says why only in words: 'has already been answered', 'is cancelled'
    (the enrollment ended), 'has expired', 'is not open yet'."""
    if "answered" in message:
        return "answered"
    return "ended" if "cancelled" in message else "not-open"


async def _finish(sessions: async_sessionmaker[AsyncSession], response_id: str, questionnaire_id: int, *,
                  status: str, outcome: dict | None = None) -> None:
    async with sessions.begin() as session:
        response = await session.get(ResponseRecord, response_id)
        response.status, response.outcome = status, outcome
        if status == "accepted":
            questionnaire = await session.get(QuestionnaireRecord, questionnaire_id)
            questionnaire.status, questionnaire.answered_at = "answered", utcnow()
