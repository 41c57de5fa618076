"""Holiday calendars, birthdays and the dates birthday and holiday steps fall on: pure functions, fixed dates."""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from language.holidays import birthdays, occasion_dates, parse_calendar
from language.loader import DocumentInvalid
from language.plan import compile_plan, occasion_span, occasion_touchpoints
from language.timing import parse_timing
from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site

SITE = load_site(PROJECT_ROOT / "pathways")
SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR = """\
id: test
name: Test
source: made up
covers: {from: 2026-01-01, to: 2026-12-31}
holidays:
  lantern: [2026-03-03]
"""


def test_the_shipped_china_calendar_has_the_festivals_of_2026_and_2027():
    china = SITE.calendars["cn"]
    assert china.holidays["spring-festival"] == [date(2026, 2, 17), date(2027, 2, 6)]
    assert china.holidays["mid-autumn"] == [date(2026, 9, 25), date(2027, 9, 15)]
    assert (china.covers.from_, china.covers.to) == (date(2026, 1, 1), date(2027, 12, 31)) and china.source


def test_a_calendar_is_refused_with_its_line_when_a_date_is_outside_covers_or_its_id_is_not_its_name():
    with pytest.raises(DocumentInvalid) as outside:
        parse_calendar(CALENDAR.replace("2026-03-03", "2027-03-03"), "test.yaml", expected_id="test")
    with pytest.raises(DocumentInvalid) as misnamed:
        parse_calendar(CALENDAR, "other.yaml", expected_id="other")

    assert "dates outside covers (2026-01-01 to 2026-12-31): lantern 2027-03-03" in str(outside.value.problems[0])
    [problem] = misnamed.value.problems
    assert (problem.line, problem.message) == (1, "the calendar in other.yaml must have id 'other', not 'test'")


def test_birthdays_fall_within_the_span_and_29_february_on_the_28th_in_other_years():
    assert birthdays(date(1992, 2, 29), date(2026, 1, 1), date(2028, 12, 31)) == [
        date(2026, 2, 28), date(2027, 2, 28), date(2028, 2, 29)]
    assert birthdays(date(1980, 6, 1), date(2026, 6, 2), date(2027, 5, 31)) == []
    assert birthdays(date(1980, 6, 1), date(2026, 6, 1), date(2026, 6, 1)) == [date(2026, 6, 1)]


def test_occasion_dates_say_when_a_calendar_ends_before_the_span_and_no_birth_date_means_no_birthday():
    calendar = parse_calendar(CALENDAR, "test.yaml", expected_id="test")
    dates, gaps = occasion_dates(["birthday", "holiday test/lantern"], date(2026, 3, 1), date(2027, 3, 1), None,
                                 {"test": calendar})
    assert dates == {"birthday": [], "holiday test/lantern": [date(2026, 3, 3)]}
    assert gaps == ["holiday calendar 'test' covers 2026-01-01 to 2026-12-31, not all of 2026-03-01 to 2027-03-01"]


def test_birthday_and_holiday_timings_parse_and_name_a_bad_clock():
    assert parse_timing("birthday 10:00").occasion == "birthday"
    assert parse_timing("holiday CN/Spring-Festival 9:30").occasion == "holiday cn/spring-festival"
    with pytest.raises(ValueError, match="'25:00' is not a time of day"):
        parse_timing("birthday 25:00")


def test_occasion_steps_are_left_out_of_the_plan_and_dated_from_their_dates_inside_the_send_window():
    pathway = parse_pathway("""\
id: occasions
version: 1
title: Occasions
anchor: discharge_date
timezone: Asia/Shanghai
send_window: "09:00-20:00"
locales: [en]
steps:
  - {kind: message, id: birthday, at: birthday 07:30, template: {en: {subject: a, body: b}}}
  - {kind: message, id: festival, at: holiday cn/spring-festival 10:00, template: {en: {subject: a, body: b}}}
  - {kind: message, id: last, at: day 100 10:00, template: {en: {subject: a, body: b}}}
""", "occasions.yaml", SITE.instruments, SITE.teams(), SITE.calendars)
    anchor = date(2026, 12, 1)

    assert [t.step_id for t in compile_plan(pathway, anchor, "Asia/Shanghai")] == ["last"]
    assert occasion_span(pathway, anchor, "Asia/Shanghai") == (anchor, date(2027, 3, 11))
    touchpoints = occasion_touchpoints(pathway, {"birthday": [date(2027, 1, 5)],
                                                 "holiday cn/spring-festival": [date(2027, 2, 6)]}, "Asia/Shanghai")
    assert [(t.step_id, t.due.astimezone(SHANGHAI)) for t in touchpoints] == [
        ("birthday", datetime.combine(date(2027, 1, 5), time(9, 0), SHANGHAI)),  # 07:30 waits for the window
        ("festival", datetime.combine(date(2027, 2, 6), time(10, 0), SHANGHAI))]
