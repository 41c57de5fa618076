"""Reaching a patient: which channels a message tries, in which order, and when the patient would
rather not be contacted (their quiet hours, and how many messages a day they take).

Pure functions of their arguments: the delivery activity asks them with the patient's preferences,
the preview with none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from language.model import MessageStep, Pathway, QuestionnaireStep, Reach

DEFAULT_CHANNEL = "email"
# Messages a patient takes in a local day, across all their enrollments, unless the site or they say otherwise.
DEFAULT_DAILY_BUDGET = 5
QUIET_HOURS_HELP = "'HH:MM-HH:MM' in the patient's own time, e.g. 22:00-07:00 (across midnight) or 13:00-14:00"
_QUIET_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def pathway_channels(step_channel: str | None, reach: Reach | None, locale: str) -> list[str]:
    """The pathway's order for one message: the step's own channel, else `reach` for the patient's language,
    else email."""
    if step_channel:
        return [step_channel]
    return list((reach.channels.get(locale) if reach else None) or [DEFAULT_CHANNEL])


def channel_order(preferred: list[str], step_channel: str | None, reach: Reach | None, locale: str) -> list[str]:
    """The patient's preferred channels first, then the pathway's, each once."""
    return list(dict.fromkeys([*preferred, *pathway_channels(step_channel, reach, locale)]))


def step_channels(pathway: Pathway, step: MessageStep | QuestionnaireStep) -> dict[str, list[str]]:
    """Per pathway language, the order a patient without preferences gets (what authors see in a preview)."""
    return {locale: pathway_channels(step.channel, pathway.reach, locale) for locale in pathway.locales}


@dataclass(frozen=True)
class QuietHours:
    """Local hours a patient asked not to be contacted; `until` before `starts` runs across midnight."""

    starts: time
    until: time

    def __str__(self) -> str:
        return f"{self.starts:%H:%M}-{self.until:%H:%M}"


def parse_quiet_hours(text: str) -> QuietHours:
    match = _QUIET_HOURS.match(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not quiet hours; write {QUIET_HOURS_HELP}")
    h1, m1, h2, m2 = (int(group) for group in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"'{text}' has a time outside 00:00-23:59")
    if (h1, m1) == (h2, m2):
        raise ValueError(f"quiet hours '{text}' start and end at the same time")
    return QuietHours(time(h1, m1), time(h2, m2))


def quiet_until(moment: datetime, quiet: QuietHours, zone: str) -> datetime | None:
    """When the quiet hours `moment` falls in end (an instant), or None if it falls outside them."""
    local = moment.astimezone(ZoneInfo(zone))
    now = local.time()
    across_midnight = quiet.until < quiet.starts
    inside = (now >= quiet.starts or now < quiet.until) if across_midnight else quiet.starts <= now < quiet.until
    if not inside:
        return None
    day = local.date() + timedelta(days=1) if across_midnight and now >= quiet.starts else local.date()
    return _instant(datetime.combine(day, quiet.until, tzinfo=local.tzinfo))


def local_day(moment: datetime, zone: str) -> tuple[datetime, datetime]:
    """The patient's calendar day around `moment`, as the instants it starts and the next one starts."""
    local = moment.astimezone(ZoneInfo(zone))
    starts = datetime.combine(local.date(), time(0), tzinfo=local.tzinfo)
    return _instant(starts), _instant(starts + timedelta(days=1))


def _instant(local: datetime) -> datetime:
    """A wall-clock time as a real instant (one DST skipped moves on by the gap)."""
    return local.astimezone(ZoneInfo("UTC")).astimezone(local.tzinfo)
