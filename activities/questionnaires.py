"""Questionnaire occurrences as database records, and screening their free text for crisis language."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from store.db import QuestionnaireRecord, ResponseRecord
from language.instruments.model import Instrument
from language.lexicon import CrisisLexicon
from workflows.contracts import EXPIRE_QUESTIONNAIRE, OPEN_QUESTIONNAIRE, SCREEN_FREE_TEXT, QuestionnaireOccurrence


class QuestionnaireActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], instruments: Mapping[str, Instrument],
                 lexicon: CrisisLexicon):
        self._sessions = sessions
        self._instruments = instruments
        self._lexicon = lexicon

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

    @activity.defn(name=SCREEN_FREE_TEXT)
    async def screen_free_text(self, response_id: str) -> bool:
        """Whether the response's free text holds crisis language. Only the answer leaves: True or False."""
        async with self._sessions() as session:
            response = await session.get(ResponseRecord, response_id)
        instrument = self._instruments[response.instrument_id]
        texts = [response.answers.get(item.id) for item in instrument.items if item.kind == "free_text"]
        found = [phrase for text in texts if isinstance(text, str) for phrase in self._lexicon.matches(text)]
        if found:
            activity.logger.warning("crisis language in response %s (lexicon v%s, %d phrase(s))",
                                    response_id, self._lexicon.version, len(found))
        return bool(found)


async def _questionnaire(session: AsyncSession, occurrence: QuestionnaireOccurrence) -> QuestionnaireRecord | None:
    return await session.scalar(select(QuestionnaireRecord).where(
        QuestionnaireRecord.enrollment_id == occurrence.enrollment_id,
        QuestionnaireRecord.step_id == occurrence.step_id,
        QuestionnaireRecord.occurrence == occurrence.occurrence))
