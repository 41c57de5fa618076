"""Taking a questionnaire response: from the patient's form, from staff on the phone, or a scenario.

The answers are validated against the instrument, stored (they never leave the database), scored,
and handed to the workflow as an Update carrying only the score, band, flags and item values that
rules need. The workflow's validator is the authority on whether the occurrence is still open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowUpdateFailedError

from store.db import QuestionnaireRecord, ResponseRecord, utcnow
from language.instruments.model import Instrument
from language.instruments.scoring import AnswersInvalid, score
from workflows.contracts import ResponseSubmission, RuleOutcome, workflow_id_for
from workflows.pathway import PathwayWorkflow


class QuestionnaireClosed(Exception):
    """Not open for answers: expired, already answered, or never opened."""


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
        raise QuestionnaireClosed("this questionnaire has already been answered")
    if record.status == "expired" or utcnow() >= record.expires_at:
        raise QuestionnaireClosed("this questionnaire has closed")
    return record


async def submit_response(sessions: async_sessionmaker[AsyncSession], client: Client,
                          instruments: Mapping[str, Instrument], *, enrollment_id: str, step_id: str,
                          occurrence: int, answers: dict, source: str, entered_by: str | None = None) -> Accepted:
    """Validate, store, score and deliver a response to the workflow.

    The response is stored before the workflow is told, so a crash in between loses nothing: the
    row stays `received` for staff to see. A refusal by the workflow is stored as `refused`.
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
        outcome = await workflow.execute_update(
            PathwayWorkflow.submit_response,
            ResponseSubmission(step_id=step_id, occurrence=occurrence, response_id=response.id, score=result.total,
                               band=result.band, flags=list(result.flags), items=dict(result.items),
                               has_free_text=any(item.kind == "free_text" and str(answers.get(item.id) or "").strip()
                                                 for item in instrument.items)),
        )
    except WorkflowUpdateFailedError as refused:
        await _finish(sessions, response.id, questionnaire.id, status="refused")
        cause = refused.cause
        raise QuestionnaireClosed(getattr(cause, "message", None) or "this questionnaire is not open") from None
    await _finish(sessions, response.id, questionnaire.id, status="accepted", outcome=outcome.model_dump())
    return Accepted(response.id, outcome)


async def _finish(sessions: async_sessionmaker[AsyncSession], response_id: str, questionnaire_id: int, *,
                  status: str, outcome: dict | None = None) -> None:
    async with sessions.begin() as session:
        response = await session.get(ResponseRecord, response_id)
        response.status, response.outcome = status, outcome
        if status == "accepted":
            questionnaire = await session.get(QuestionnaireRecord, questionnaire_id)
            questionnaire.status, questionnaire.answered_at = "answered", utcnow()
