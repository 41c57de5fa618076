"""Birthday and holiday steps on the time-skipping server with the real worker: due on the right local date
and time, and the workflow's history holds the birthday's day but never the date of birth."""

import dataclasses
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from language.holidays import Covers, HolidayCalendar
from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site
from store.db import Patient
from tests.workflows.test_history_has_no_phi import histories
from tools.simulation import local_stack

SITE = load_site(PROJECT_ROOT / "pathways")
SHANGHAI = ZoneInfo("Asia/Shanghai")

PATHWAY = """\
id: occasions-test
version: 1
title: Occasions test
anchor: discharge_date
timezone: Asia/Shanghai
locales: [en]
steps:
  - kind: message
    id: birthday-greeting
    at: birthday 10:00
    template: {en: {subject: "Happy birthday", body: "From the ward"}}
  - kind: message
    id: festival-greeting
    at: holiday test/lantern 09:30
    template: {en: {subject: "Happy festival", body: "From the ward"}}
  - kind: message
    id: last-check
    at: day 30 10:00
    template: {en: {subject: "Day thirty", body: "How are you?"}}
"""


@pytest.fixture
async def anchor(time_skipping) -> date:
    return (await time_skipping.get_current_time()).astimezone(SHANGHAI).date() + timedelta(days=1)


@pytest.fixture
async def occasions_stack(time_skipping, tmp_path, database_url, anchor):
    """A site whose test calendar has its festival on day 12 and again after the span; none of it today's date."""
    calendar = HolidayCalendar(id="test", name="Test festivals", source="made up for this test",
                               covers=Covers(**{"from": anchor - timedelta(days=400), "to": anchor + timedelta(days=400)}),
                               holidays={"lantern": [anchor + timedelta(days=12), anchor + timedelta(days=300)]})
    site = dataclasses.replace(SITE, calendars={"test": calendar})
    async with local_stack(time_skipping.client, tmp_path, site=site, database_url=database_url) as stack:
        yield stack, site


async def _patient(stack, birth_date: date | None) -> Patient:
    async with stack.sessions.begin() as session:
        patient = Patient(given_name="Mei", family_name="Chen", email="patient@example.test", locale="en",
                          timezone="Asia/Shanghai", birth_date=birth_date)
        session.add(patient)
    return patient


async def test_birthday_and_holiday_steps_are_due_on_their_local_dates(time_skipping, occasions_stack, anchor):
    stack, site = occasions_stack
    pathway = parse_pathway(PATHWAY, "occasions.yaml", site.instruments, site.teams(), site.calendars)
    birthday = anchor + timedelta(days=20)
    patient = await _patient(stack, date(1992, birthday.month, birthday.day))  # 1992: a leap year, any day exists

    enrolled = await stack.enroll(patient, pathway, anchor)
    timeline = await enrolled.workflow.result()

    due = {(entry.step_id, entry.occurrence): (entry.status, entry.due.astimezone(SHANGHAI)) for entry in timeline.entries}
    assert due == {
        ("birthday-greeting", 1): ("sent", datetime.combine(birthday, time(10, 0), SHANGHAI)),
        ("festival-greeting", 1): ("sent", datetime.combine(anchor + timedelta(days=12), time(9, 30), SHANGHAI)),
        ("last-check", 1): ("sent", datetime.combine(anchor + timedelta(days=30), time(10, 0), SHANGHAI))}
    assert [entry.step_id for entry in timeline.entries] == ["festival-greeting", "birthday-greeting", "last-check"]
    _, decoded = await histories(stack.client, enrolled.workflow.id)
    # The birthday within the span is in the history (the activity's answer), the date of birth never is.
    assert birthday.isoformat().encode() in decoded and f"1992-{birthday:%m-%d}".encode() not in decoded


async def test_a_patient_without_a_date_of_birth_or_a_birthday_in_the_span_gets_no_birthday_message(
        time_skipping, occasions_stack, anchor):
    stack, site = occasions_stack
    pathway = parse_pathway(PATHWAY, "occasions.yaml", site.instruments, site.teams(), site.calendars)
    outside = anchor + timedelta(days=40)
    for birth_date in (None, date(1992, outside.month, outside.day)):
        enrolled = await stack.enroll(await _patient(stack, birth_date), pathway, anchor)
        timeline = await enrolled.workflow.result()
        assert [entry.step_id for entry in timeline.entries] == ["festival-greeting", "last-check"]
