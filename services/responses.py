"""Taking a questionnaire response: from the patient's form, from staff on the phone, or a scenario.

The answers are validated against the instrument, stored (they never leave the database), scored,
and handed to the workflow as an Update carrying only the score, band, flags and the item values that
the step's rules read (language/reads.py): the Update stays in Temporal's history. The workflow's
validator is the authority on whether the occurrence is still open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowUpdateFailedError
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

# An update is answered by a worker, a history read by the server: bounded, so a slow Temporal is a 503
# (api/overload.py) with the response kept `received`, not a request hanging for the default deadline.
UPDATE_TIMEOUT = timedelta(seconds=10)
QUERY_TIMEOUT = timedelta(seconds=5)


class QuestionnaireClosed(Exception):
    """Not open for answers: `why` is answered, expired, ended (the enrollment ended first) or not-open."""

    def __init__(self, message: str, why: str = "not-open"):
        super().__init__(message)
        self.why = why


@dataclass(frozen=True)
class Accepted:
    response_id: str
    outcome: RuleOutcome


async def open_questionnaire(session: AsyncSession, enrollment_id: str, step_id: str,
                             occurrence: int) -> QuestionnaireRecord:
    """The occurrence if it can still be answered; QuestionnaireClosed otherwise."""
    record = await session.scalar(select(QuestionnaireRecord).where(
        QuestionnaireRecord.enrollment_id == enrollment_id, QuestionnaireRecord.step_id == step_id,
        QuestionnaireRecord.occurrence == occurrence))
    if record is None:
        raise QuestionnaireClosed("this questionnaire is not open")
    if record.status == "answered":
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

    The response is stored before the workflow is told, so a crash in between loses nothing: the
    row stays `received` for staff to see. A refusal by the workflow is stored as `refused`.
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
    workflow = client.get_workflow_handle_for(PathwayWorkflow.run, workflow_id_for(enrollment_id))
    try:
        pathway = pathway or await enrolled_pathway(client, enrollment_id, step_id, occurrence)
        outcome = await workflow.execute_update(
            PathwayWorkflow.submit_response,
            ResponseSubmission(step_id=step_id, occurrence=occurrence, response_id=response.id, score=result.total,
                               band=result.band, flags=list(result.flags),
                               items=values_read(pathway, step_id, result.items),
                               has_free_text=any(item.kind == "free_text" and str(answers.get(item.id) or "").strip()
                                                 for item in instrument.items)),
            rpc_timeout=UPDATE_TIMEOUT,
        )
    except WorkflowUpdateFailedError as refused:
        await _finish(sessions, response.id, questionnaire.id, status="refused")
        message = getattr(refused.cause, "message", None) or "this questionnaire is not open"
        raise QuestionnaireClosed(message, _why_refused(message)) from None
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        # The workflow ended between our read and the update; its record of the end may still be on its way.
        await _finish(sessions, response.id, questionnaire.id, status="refused")
        raise QuestionnaireClosed("this questionnaire has closed: the enrollment has ended", "ended") from None
    await _finish(sessions, response.id, questionnaire.id, status="accepted", outcome=outcome.model_dump())
    return Accepted(response.id, outcome)


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
