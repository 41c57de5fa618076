"""What an enrollment has measured over time: questionnaire scores and numbers answered, and numbers
staff recorded on calls. For charts (the console) and anything else that plots a patient's course."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.db import CallTaskRecord, QuestionnaireRecord, ResponseRecord

SCORE = "score"


@dataclass(frozen=True)
class Point:
    step_id: str
    name: str  # "score" for a questionnaire's total, else the item's id (temperature, systolic, pain…)
    at: datetime
    value: float


@dataclass(frozen=True)
class Answered:
    step_id: str
    occurrence: int
    instrument_id: str
    at: datetime
    score: float | None
    band: str | None
    flags: list[str]
    source: str
    status: str


async def responses_of(session: AsyncSession, enrollment_id: str) -> list[Answered]:
    """Every response of the enrollment, oldest first, with its score and band (the answers stay stored)."""
    rows = await session.execute(
        select(QuestionnaireRecord.step_id, QuestionnaireRecord.occurrence, ResponseRecord)
        .join(ResponseRecord, ResponseRecord.questionnaire_id == QuestionnaireRecord.id)
        .where(QuestionnaireRecord.enrollment_id == enrollment_id)
        .order_by(ResponseRecord.submitted_at, ResponseRecord.id))
    return [Answered(step_id, occurrence, response.instrument_id, response.submitted_at, response.score,
                     response.band, list(response.flags or []), response.source, response.status)
            for step_id, occurrence, response in rows]


async def measurements(session: AsyncSession, enrollment_id: str) -> list[Point]:
    """Scores, and every numeric answer or call value, by time: booleans and codes are not plotted."""
    points: list[Point] = []
    rows = await session.execute(
        select(QuestionnaireRecord.step_id, ResponseRecord)
        .join(ResponseRecord, ResponseRecord.questionnaire_id == QuestionnaireRecord.id)
        .where(QuestionnaireRecord.enrollment_id == enrollment_id))
    for step_id, response in rows:
        if response.score is not None:
            points.append(Point(step_id, SCORE, response.submitted_at, float(response.score)))
        points += _numbers(step_id, response.submitted_at, response.answers)
    calls = await session.scalars(select(CallTaskRecord).where(
        CallTaskRecord.enrollment_id == enrollment_id, CallTaskRecord.values.is_not(None)))
    for task in calls:
        points += _numbers(task.step_id, task.recorded_at or task.due_at, task.values)
    return sorted(points, key=lambda point: (point.step_id, point.name, point.at))


def _numbers(step_id: str, at: datetime, values: dict | None) -> list[Point]:
    found = []
    for name, value in (values or {}).items():
        if isinstance(value, bool):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        found.append(Point(step_id, name, at, number))
    return found
