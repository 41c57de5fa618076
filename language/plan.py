"""Compiling a pathway for one enrollment into its dated touchpoints.

A pure function of (pathway, anchor, zone): the workflow runs it to know what to do and when, and
the preview runs it to show authors the same thing without running anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict

from language.model import AppointmentStep, Pathway, QuestionnaireStep, Step
from language.timing import SendWindow, Timing

ONE_DAY = timedelta(days=1)


def touchpoint_key(step_id: str, occurrence: int) -> str:
    """How timelines, logs and reports name one occurrence of a step: `phq9#2`."""
    return f"{step_id}#{occurrence}"


class Touchpoint(BaseModel):
    """One dated occurrence of a step for one enrollment."""

    model_config = ConfigDict(frozen=True)

    step_id: str
    occurrence: int
    kind: str
    due: AwareDatetime

    @property
    def key(self) -> str:
        return touchpoint_key(self.step_id, self.occurrence)


def anchor_instant(anchor: date | datetime, zone: str) -> datetime:
    """A date-only anchor means the start of that day in the patient's zone."""
    tz = ZoneInfo(zone)
    if isinstance(anchor, datetime):
        return anchor.astimezone(tz) if anchor.tzinfo else _wall_clock(anchor.replace(tzinfo=tz))
    # Where DST starts at midnight (America/Santiago, Asia/Beirut) the day starts at 01:00.
    return _wall_clock(datetime.combine(anchor, time(0, 0), tzinfo=tz))


def compile_plan(pathway: Pathway, anchor: date | datetime, zone: str | None = None,
                 enrollment_id: str = "") -> list[Touchpoint]:
    """Every touchpoint of the pathway for this anchor, in the order they fall due.

    A step with `spread` moves each occurrence by the enrollment's own offset within it (none without
    an enrollment, as in a preview of the pathway itself).
    """
    zone = zone or pathway.timezone
    start = anchor_instant(anchor, zone)
    touchpoints = []
    for order, step in enumerate(pathway.steps):
        if step.at is None or step.at.occasion:
            continue
        first = _first_due(start, step.at)
        if getattr(step, "spread", None) and enrollment_id:
            offset = spread_offset(enrollment_id, step.spread)
            first = (first.astimezone(timezone.utc) + offset).astimezone(first.tzinfo)
        count = step.repeat.times if step.repeat else 1
        for index in range(count):
            due = _nth_due(first, step.repeat.every, index) if step.repeat else first
            if pathway.send_window:
                due = within_window(due, pathway.send_window)
            touchpoints.append((due.astimezone(timezone.utc), order, index,
                                Touchpoint(step_id=step.id, occurrence=index + 1, kind=step.kind,
                                           due=due.astimezone(timezone.utc))))
    return [entry[-1] for entry in sorted(touchpoints, key=lambda entry: entry[:3])]


def occasion_span(pathway: Pathway, anchor: date | datetime, zone: str) -> tuple[date, date]:
    """The local days birthdays and holidays are looked for: from the anchor's to the last planned touchpoint's."""
    first = anchor_instant(anchor, zone).date()
    dues = [touchpoint.due.astimezone(ZoneInfo(zone)).date() for touchpoint in compile_plan(pathway, anchor, zone)]
    return first, max([first, *dues])


def occasion_touchpoints(pathway: Pathway, dates: Mapping[str, Sequence[date]], zone: str) -> list[Touchpoint]:
    """The touchpoints of steps `at: birthday HH:MM` or `at: holiday ...`: one on each of its occasion's dates."""
    touchpoints = []
    for step in pathway.steps:
        if step.at is None or not step.at.occasion:
            continue
        for index, day in enumerate(dates.get(step.at.occasion, ())):
            due = _wall_clock(datetime.combine(day, step.at.clock, tzinfo=ZoneInfo(zone)))
            if pathway.send_window:
                due = within_window(due, pathway.send_window)
            touchpoints.append(Touchpoint(step_id=step.id, occurrence=index + 1, kind=step.kind,
                                          due=due.astimezone(timezone.utc)))
    return sorted(touchpoints, key=lambda touchpoint: touchpoint.due)


def followed_due(pathway: Pathway, step: Step, reached: datetime, zone: str, enrollment_id: str = "") -> datetime:
    """When a step written `after: {step: ..., <state>: <delay>}` falls due, its source having reached that
    state at `reached`: the delay as `remind` counts it, then the step's spread and the send window."""
    due = _later(reached.astimezone(ZoneInfo(zone)), step.after.delay)
    if getattr(step, "spread", None) and enrollment_id:
        due = (due.astimezone(timezone.utc) + spread_offset(enrollment_id, step.spread)).astimezone(due.tzinfo)
    if pathway.send_window:
        due = within_window(due, pathway.send_window)
    return due.astimezone(timezone.utc)


def spread_offset(enrollment_id: str, spread: timedelta) -> timedelta:
    """Whole seconds in [0, spread), fixed by the enrollment id alone: the same on every replay and for
    every step and occurrence, so a patient hears at the same minute each time. sha256, not hash(),
    which Python salts per process."""
    digest = int.from_bytes(hashlib.sha256(enrollment_id.encode("utf-8")).digest()[:8], "big")
    return timedelta(seconds=digest % max(1, int(spread.total_seconds())))


def _first_due(start: datetime, timing: Timing) -> datetime:
    if timing.clock is not None:
        day = start.date() + timedelta(days=timing.days)
        return datetime.combine(day, timing.clock, tzinfo=start.tzinfo)
    # Aware arithmetic keeps the local wall clock across DST for whole days; the offset is elapsed
    # time, so it is added in UTC: `day 0 +2h` is two hours after the anchor even on a DST night.
    day = _wall_clock(start + timedelta(days=timing.days))
    return (day.astimezone(timezone.utc) + timing.offset).astimezone(start.tzinfo)


def questionnaire_window(pathway: Pathway, step: QuestionnaireStep, opened: datetime, zone: str) -> tuple[list[datetime], datetime]:
    """When reminders fall due and when the questionnaire expires, for an occurrence opened at `opened`.

    Reminders respect the send window (a reminder is a message); expiry is a deadline and does not.
    """
    local = opened.astimezone(ZoneInfo(zone))
    expires = _later(local, step.expire).astimezone(timezone.utc)
    reminders = []
    for offset in step.remind:
        due = _later(local, offset)
        if pathway.send_window:
            due = within_window(due, pathway.send_window)
        if due.astimezone(timezone.utc) < expires:
            reminders.append(due.astimezone(timezone.utc))
    return reminders, expires


def appointment_reminders(pathway: Pathway, step: AppointmentStep, visit: datetime, zone: str) -> list[datetime]:
    """When the reminders of a visit at `visit` fall due, earliest first: each `remind` before it (whole days
    keep the local clock), inside the send window; one the window would push to the visit or later is dropped."""
    local = visit.astimezone(ZoneInfo(zone))
    reminders = set()
    for before in step.remind:
        due = _later(local, -before)
        if pathway.send_window:
            due = within_window(due, pathway.send_window)
        if due < visit:
            reminders.add(due.astimezone(timezone.utc))
    return sorted(reminders)


def _nth_due(first: datetime, every: timedelta, index: int) -> datetime:
    # Whether `every` is whole days decides, not the product: 1d12h twice is 3 days, but elapsed.
    if every % ONE_DAY == timedelta(0):
        return _wall_clock(first + every * index)
    return (first.astimezone(timezone.utc) + every * index).astimezone(first.tzinfo)


def _later(moment: datetime, duration: timedelta) -> datetime:
    """`duration` after `moment`, as the language means it: whole days keep the local clock time
    across DST (`1d` after 10:00 is 10:00), anything else is elapsed time (`36h` is 36 hours)."""
    if duration % ONE_DAY == timedelta(0):
        return _wall_clock(moment + duration)
    return (moment.astimezone(timezone.utc) + duration).astimezone(moment.tzinfo)


def within_window(due: datetime, window: SendWindow) -> datetime:
    """The first moment at or after `due` (in its zone) when the window is open."""
    local = due.astimezone(due.tzinfo)
    if local.time() < window.opens:
        return _wall_clock(datetime.combine(local.date(), window.opens, tzinfo=local.tzinfo))
    if local.time() > window.closes:
        return _wall_clock(datetime.combine(local.date() + ONE_DAY, window.opens, tzinfo=local.tzinfo))
    return local


def send_window_at(moment: datetime, window: SendWindow, zone: str) -> tuple[datetime | None, datetime]:
    """For a message retried at `moment`: when the window open now closes (None if it is closed), and
    when it opens next after that."""
    local = moment.astimezone(ZoneInfo(zone))
    if window.opens <= local.time() <= window.closes:
        return (_wall_clock(datetime.combine(local.date(), window.closes, tzinfo=local.tzinfo)),
                _wall_clock(datetime.combine(local.date() + ONE_DAY, window.opens, tzinfo=local.tzinfo)))
    return None, within_window(local, window)


def _wall_clock(moment: datetime) -> datetime:
    """Normalise a local time that DST skipped (02:30 on a spring-forward night) to a real instant."""
    return moment.astimezone(timezone.utc).astimezone(moment.tzinfo)
