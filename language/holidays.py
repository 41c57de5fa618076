"""Holiday calendars (`pathways/site/holidays/<id>.yaml`) and the dates steps such as `at: birthday 10:00`
or `at: holiday cn/spring-festival 10:00` fall on within an enrollment's span. Pure: the site reads the files."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from pydantic import Field, ValidationError, model_validator

from language.loader import DocumentInvalid, load_document
from language.model import LanguageModel, Slug
from language.schema_errors import schema_problems
from language.timing import BIRTHDAY, holiday_occasion


class Covers(LanguageModel):
    """The days the calendar lists every holiday of: a span past `to` cannot be planned from it."""

    from_: date = Field(alias="from", description="the first day covered", examples=["2026-01-01"])
    to: date = Field(description="the last day covered", examples=["2027-12-31"])


class HolidayCalendar(LanguageModel):
    """A site's holidays by name, each with its dates, and where the dates come from."""

    id: Slug = Field(description="what steps name: `holiday <id>/<holiday> HH:MM`", examples=["cn"])
    name: str = Field(min_length=1, description="shown to authors", examples=["China public holidays"])
    source: str = Field(min_length=1, description="the regulation or almanac the dates come from, for reviewers")
    covers: Covers = Field(description="the first and last day the calendar covers")
    holidays: dict[Slug, list[date]] = Field(min_length=1, description="each holiday's dates within `covers`",
                                             examples=[{"spring-festival": ["2026-02-17", "2027-02-06"]}])

    @model_validator(mode="after")
    def _dates_within_covers(self) -> HolidayCalendar:
        outside = [f"{name} {day}" for name, days in self.holidays.items() for day in days
                   if not self.covers.from_ <= day <= self.covers.to]
        if outside:
            raise ValueError(f"dates outside covers ({self.covers.from_} to {self.covers.to}): {', '.join(outside)}")
        return self


def parse_calendar(text: str, file: str, expected_id: str) -> HolidayCalendar:
    """A calendar document named after its id; DocumentInvalid lists every problem at its line."""
    document = load_document(text, file)
    try:
        calendar = HolidayCalendar.model_validate(document.data)
    except ValidationError as error:
        raise DocumentInvalid(schema_problems(document, error, HolidayCalendar)) from None
    if calendar.id != expected_id:
        raise DocumentInvalid([document.problem(("id",), f"the calendar in {expected_id}.yaml must have id "
                                                         f"'{expected_id}', not '{calendar.id}'")])
    return calendar


def birthdays(birth_date: date, first: date, last: date) -> list[date]:
    """Each birthday from `first` to `last`; one born on 29 February has it on the 28th in other years."""
    found = []
    for year in range(first.year, last.year + 1):
        day = birth_date.replace(year=year) if (birth_date.month, birth_date.day) != (2, 29) or _leap(year) \
            else date(year, 2, 28)
        if first <= day <= last:
            found.append(day)
    return found


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def occasion_dates(occasions: list[str], first: date, last: date, birth_date: date | None,
                   calendars: Mapping[str, HolidayCalendar]) -> tuple[dict[str, list[date]], list[str]]:
    """The dates each occasion falls on from `first` to `last`, and why any could not be known in full
    (a calendar that ends before `last`). A patient without a date of birth has no birthday dates."""
    dates: dict[str, list[date]] = {}
    gaps: list[str] = []
    for occasion in occasions:
        if occasion == BIRTHDAY:
            dates[occasion] = birthdays(birth_date, first, last) if birth_date else []
            continue
        calendar = next(calendar for calendar in calendars.values() for holiday in calendar.holidays
                        if holiday_occasion(calendar.id, holiday) == occasion)
        holiday = occasion.rsplit("/", 1)[1]
        dates[occasion] = sorted(day for day in calendar.holidays[holiday] if first <= day <= last)
        if not calendar.covers.from_ <= first or last > calendar.covers.to:
            gaps.append(f"holiday calendar '{calendar.id}' covers {calendar.covers.from_} to {calendar.covers.to}, "
                        f"not all of {first} to {last}")
    return dates, gaps
