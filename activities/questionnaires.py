"""Questionnaire occurrences and escalations as database records (the workflow keeps only ids)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from carepath.db import EscalationRecord, QuestionnaireRecord
from workflows.contracts import (
    EXPIRE_QUESTIONNAIRE,
    OPEN_ESCALATION,
    OPEN_QUESTIONNAIRE,
    EscalationRequest,
    QuestionnaireOccurrence,
)


class QuestionnaireActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions

    @activity.defn(name=OPEN_QUESTIONNAIRE)
    async def open_questionnaire(self, occurrence: QuestionnaireOccurrence) -> None:
        async with self._sessions.begin() as session:
            if await _questionnaire(session, occurrence) is None:
                session.add(QuestionnaireRecord(
                    enrollment_id=occurrence.enrollment_id, step_id=occurrence.step_id,
                    occurrence=occurrence.occurrence, instrument_id=occurrence.instrument_id, status="open",
                    opens_at=occurrence.opens, expires_at=occurrence.expires))

    @activity.defn(name=EXPIRE_QUESTIONNAIRE)
    async def expire_questionnaire(self, occurrence: QuestionnaireOccurrence) -> None:
        async with self._sessions.begin() as session:
            record = await _questionnaire(session, occurrence)
            if record is not None and record.status == "open":
                record.status = "expired"

    @activity.defn(name=OPEN_ESCALATION)
    async def open_escalation(self, request: EscalationRequest) -> str:
        """Record an escalation once per trigger; a retry returns the one already recorded."""
        async with self._sessions.begin() as session:
            existing = await session.scalar(select(EscalationRecord).where(
                EscalationRecord.enrollment_id == request.enrollment_id,
                EscalationRecord.step_id == request.step_id,
                EscalationRecord.occurrence == request.occurrence,
                EscalationRecord.trigger == request.trigger))
            if existing is not None:
                return existing.id
            record = EscalationRecord(enrollment_id=request.enrollment_id, step_id=request.step_id,
                                      occurrence=request.occurrence, trigger=request.trigger, reason=request.reason,
                                      priority=request.priority, response_id=request.response_id)
            session.add(record)
            await session.flush()
            return record.id


async def _questionnaire(session: AsyncSession, occurrence: QuestionnaireOccurrence) -> QuestionnaireRecord | None:
    return await session.scalar(select(QuestionnaireRecord).where(
        QuestionnaireRecord.enrollment_id == occurrence.enrollment_id,
        QuestionnaireRecord.step_id == occurrence.step_id,
        QuestionnaireRecord.occurrence == occurrence.occurrence))
