"""Birthdays and holidays for an enrollment: the patient's date of birth stays here, in the activity; the
workflow learns only the days within its span on which a birthday or holiday step falls due."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from language.holidays import HolidayCalendar, occasion_dates
from store.db import Enrollment, Patient
from workflows.contracts import RESOLVE_OCCASIONS, OccasionDates, OccasionQuery


class OccasionActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], calendars: Mapping[str, HolidayCalendar]):
        self._sessions = sessions
        self._calendars = calendars

    @activity.defn(name=RESOLVE_OCCASIONS)
    async def resolve_occasions(self, query: OccasionQuery) -> OccasionDates:
        async with self._sessions() as session:
            enrollment = await session.get(Enrollment, query.enrollment_id)
            patient = await session.get(Patient, enrollment.patient_id)
        dates, gaps = occasion_dates(query.occasions, query.first, query.last, patient.birth_date, self._calendars)
        return OccasionDates(dates=dates, gaps=gaps)
