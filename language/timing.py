"""The timing vocabulary of pathways: durations, `at` expressions and send windows.

Pure functions with no clock: the compiler and the workflow both rely on them being deterministic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from pydantic import TypeAdapter, ValidationError

_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1),
          "m": timedelta(minutes=1), "s": timedelta(seconds=1)}
_SHORT_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_ISO_DURATION = TypeAdapter(timedelta)
_ISO_CALENDAR_UNITS = re.compile(r"^P\d+(?:[.,]\d+)?[YM]")
DURATION_HELP = "a duration such as 30s, 15m, 2h, 1d, 1w, 1d12h or ISO 8601 PT30S"
MAX_DAYS = 36_600
"""No pathway spans more than about a century; beyond this, dates would overflow the calendar."""
LONGEST = timedelta(days=MAX_DAYS)


ANCHOR_HELP = "a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM, optionally +08:00)"


def parse_anchor(text: str) -> date | datetime:
    """An enrollment's anchor as people type it: a date is that whole day, a date-time one instant."""
    try:
        return datetime.fromisoformat(text) if "T" in text or " " in text.strip() else date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is not {ANCHOR_HELP}") from None


class NotADuration(ValueError):
    """The text is not shaped like a duration at all (as opposed to one that is too long, say)."""


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """`30s`, `2h`, `1d12h`, `1w` or ISO 8601 (`PT30S`, `P1D`) → timedelta; ValueError otherwise."""
    if isinstance(text, timedelta):
        return text
    if not isinstance(text, str):
        raise NotADuration(f"expected {DURATION_HELP}, got {text!r}")
    compact = text.strip().replace(" ", "")
    match = _SHORT_DURATION.match(compact.lower())
    if match and any(match.groups()):
        if "M" in compact:
            # `1M` reads as a month to some and as a minute to others: make the author choose.
            raise ValueError(f"'{text}' is ambiguous: write 1m for a minute, or days (e.g. 30d) for a month")
        try:
            duration = sum((int(amount) * unit for amount, unit in zip(match.groups(), _UNITS.values()) if amount),
                           timedelta())
        except (OverflowError, ValueError):  # beyond what timedelta (or int()) can hold
            raise ValueError(f"'{text}' is longer than {MAX_DAYS} days") from None
    elif compact.upper().startswith("P"):
        iso = compact.upper()
        if _ISO_CALENDAR_UNITS.match(iso):
            raise ValueError(f"'{text}' counts months or years, which vary in length; write days (e.g. P30D or 30d)")
        try:
            duration = _ISO_DURATION.validate_python(iso)
        except ValidationError:
            raise NotADuration(f"'{text}' is not {DURATION_HELP}") from None
    else:
        raise NotADuration(f"'{text}' is not {DURATION_HELP}")
    if duration > LONGEST:
        raise ValueError(f"'{text}' is longer than {MAX_DAYS} days")
    return duration


def format_duration(value: timedelta) -> str:
    """The short form authors write, e.g. 1d12h; inverse of parse_duration."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for suffix, unit in _UNITS.items():
        amount, seconds = divmod(seconds, int(unit.total_seconds()))
        if amount:
            parts.append(f"{amount}{suffix}")
    return "".join(parts)


@dataclass(frozen=True)
class Timing:
    """When a step first happens, relative to the enrollment's anchor.

    `day 3 09:00`: the anchor's calendar date + 3 days, at 09:00 in the patient's zone.
    `day -1 18:00`: the evening before the anchor's date (negative days come before the anchor).
    `day 0 +2h`: the anchor instant + 0 days + 2 hours.
    `30s` / `PT30S`: the anchor instant + the duration (for tests and benchmarks).
    """

    days: int
    clock: time | None
    offset: timedelta
    # The words the author wrote, kept for JSON and messages; two spellings of one time are equal.
    text: str = field(default="", compare=False)
    # `birthday` or `holiday <calendar>/<holiday>`: due at `clock` on each such date in the enrollment's span.
    occasion: str | None = None

    def __str__(self) -> str:
        return self.text


AT_HELP = ("'day N HH:MM' (e.g. day 3 09:00; a negative N is before the anchor, e.g. day -1 18:00), "
           "'day N +DURATION' (e.g. day 0 +2h), a duration (e.g. 30s), 'birthday HH:MM' or "
           "'holiday CALENDAR/HOLIDAY HH:MM' (e.g. holiday cn/spring-festival 10:00)")
BIRTHDAY = "birthday"
_OCCASION_AT = re.compile(r"^(birthday|holiday\s+([a-z0-9-]+)/([a-z0-9-]+))\s+(\d{1,2}):(\d{2})$", re.IGNORECASE)


def holiday_occasion(calendar: str, holiday: str) -> str:
    return f"holiday {calendar}/{holiday}"
_DAY_AT = re.compile(r"^day\s+(-?\d+)(?:\s+(\d{1,2}):(\d{2})|\s+\+\s*(\S+))?$", re.IGNORECASE)


@lru_cache(maxsize=1024)
def parse_timing(text: str) -> Timing:
    text = text.strip()
    if occasion := _OCCASION_AT.match(text):
        whole, calendar, holiday, hour, minute = occasion.groups()
        if int(hour) > 23 or int(minute) > 59:
            raise ValueError(f"'{hour}:{minute}' is not a time of day (00:00 to 23:59)")
        name = holiday_occasion(calendar.lower(), holiday.lower()) if calendar else BIRTHDAY
        return Timing(0, time(int(hour), int(minute)), timedelta(), text, occasion=name)
    match = _DAY_AT.match(text)
    if match:
        days, hour, minute, offset = match.groups()
        if abs(int(days)) > MAX_DAYS:
            side = "after" if int(days) > 0 else "before"
            raise ValueError(f"'day {int(days)}' is more than {MAX_DAYS} days {side} the anchor")
        if hour is not None:
            if int(hour) > 23 or int(minute) > 59:
                raise ValueError(f"'{hour}:{minute}' is not a time of day (00:00 to 23:59)")
            return Timing(int(days), time(int(hour), int(minute)), timedelta(), text)
        return Timing(int(days), None, parse_duration(offset) if offset else timedelta(), text)
    try:
        return Timing(0, None, parse_duration(text), text)
    except NotADuration:
        raise ValueError(f"'{text}' is not a time; write {AT_HELP}") from None


@dataclass(frozen=True)
class SendWindow:
    """Local hours when patients may be contacted; `closes` is 23:59:59 for a window written to 24:00."""

    opens: time
    closes: time
    text: str = field(default="", compare=False)  # as the author wrote it

    def __str__(self) -> str:
        return self.text


WINDOW_HELP = "'HH:MM-HH:MM', e.g. 09:00-20:00"
# En and em dashes too: a window copied from a document looks right and must read right.
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})\s*[-\u2013\u2014]\s*(\d{1,2}):(\d{2})$")


@lru_cache(maxsize=64)
def parse_send_window(text: str) -> SendWindow:
    text = text.strip()
    match = _WINDOW.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a send window; write {WINDOW_HELP}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"'{text}' has a time outside 00:00-24:00")
    opens, closes = time(h1, m1), (time(23, 59, 59) if h2 == 24 else time(h2, m2))
    if closes <= opens:
        raise ValueError(f"send window '{text}' must open before it closes")
    return SendWindow(opens, closes, text)
