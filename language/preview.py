"""What a pathway will do for one enrollment, shown before anything runs: `carepath preview`.

Pure: the same compile_plan and questionnaire_window the workflow runs, turned into a list of dated
events in the patient's zone, and then into text, JSON or a self-contained HTML page (inline CSS
and SVG, no scripts, nothing fetched) that a reviewer can open or attach to a review.

Only the plan is shown: what rules may add (a message a rule sends, an escalation) depends on
answers, so steps that only rules start are listed apart, with the rules that start them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from language.model import MessageStep, Pathway
from language.plan import anchor_instant, compile_plan, questionnaire_window
from language.reach import step_channels
from language.timing import format_duration

KIND_ORDER = {"message": 0, "questionnaire": 1, "call": 2}
# Within one minute: a questionnaire opens before its reminders, and expires last.
EVENT_ORDER = {"send": 0, "open": 1, "call": 2, "reminder": 3, "expire": 4}


@dataclass(frozen=True)
class Event:
    """One planned moment: a message sent, a questionnaire opened, reminded or expired, a call due."""

    at: datetime  # in the patient's zone
    day: int  # calendar days after the anchor's date, in the patient's zone
    step_id: str
    occurrence: int
    kind: str  # the step's kind
    event: str  # send, open, reminder, expire, call
    detail: str = ""

    @property
    def label(self) -> str:
        return f"{self.step_id} #{self.occurrence}"


@dataclass(frozen=True)
class Window:
    """One questionnaire occurrence: open from `opens` until `expires`, with reminders between."""

    step_id: str
    occurrence: int
    opens: datetime
    reminders: tuple[datetime, ...]
    expires: datetime


@dataclass(frozen=True)
class OnDemand:
    """A step with no time of its own: it happens only when a rule (or expiry) starts it."""

    step_id: str
    kind: str
    started_by: tuple[str, ...]


@dataclass(frozen=True)
class Preview:
    pathway: Pathway
    anchor: datetime  # the anchor instant in the patient's zone
    zone: str
    events: tuple[Event, ...]
    windows: tuple[Window, ...]
    on_demand: tuple[OnDemand, ...]

    @property
    def last_day(self) -> int:
        return max((event.day for event in self.events), default=0)

    def repeated(self, step_id: str) -> bool:
        return sum(1 for e in self.events if e.step_id == step_id and e.event in ("send", "open", "call")) > 1


def preview(pathway: Pathway, anchor: date | datetime, zone: str | None = None) -> Preview:
    """The pathway's plan for an enrollment anchored at `anchor`, in the patient's `zone`."""
    zone = zone or pathway.timezone
    tz = ZoneInfo(zone)
    start = anchor_instant(anchor, zone)
    # The same plan without the send window shows which touchpoints the window holds back.
    unwindowed = pathway.model_copy(update={"send_window": None}) if pathway.send_window else None
    raw_due = ({(t.step_id, t.occurrence): t.due for t in compile_plan(unwindowed, anchor, zone)}
               if unwindowed else {})

    def day(moment: datetime) -> int:
        return (moment.astimezone(tz).date() - start.date()).days

    def held(moment: datetime, original: datetime | None) -> str:
        if original is None or original == moment:
            return ""
        original = original.astimezone(tz)
        return f"held from day {day(original)} {original:%H:%M} by the send window"

    events: list[Event] = []
    windows: list[Window] = []
    for touchpoint in compile_plan(pathway, anchor, zone):
        step = pathway.step(touchpoint.step_id)
        due = touchpoint.due.astimezone(tz)
        key = (step.id, touchpoint.occurrence)
        original = raw_due.get(key)
        if step.kind == "questionnaire":
            reminders, expires = questionnaire_window(pathway, step, due, zone)
            raw_reminders = (questionnaire_window(unwindowed, step, due, zone)[0] if unwindowed else reminders)
            windows.append(Window(step.id, touchpoint.occurrence, due, tuple(r.astimezone(tz) for r in reminders),
                                  expires.astimezone(tz)))
            events.append(Event(due, day(due), step.id, touchpoint.occurrence, step.kind, "open",
                                _join(f"{step.instrument}; open until day {day(expires)} "
                                      f"{expires.astimezone(tz):%H:%M}", held(due, original))))
            for number, reminder in enumerate(reminders, start=1):
                reminder = reminder.astimezone(tz)
                unheld = raw_reminders[number - 1] if number <= len(raw_reminders) else None
                events.append(Event(reminder, day(reminder), step.id, touchpoint.occurrence, step.kind, "reminder",
                                    _join(f"reminder {number}, if still unanswered", held(reminder, unheld))))
            expires = expires.astimezone(tz)
            events.append(Event(expires, day(expires), step.id, touchpoint.occurrence, step.kind, "expire",
                                _expiry_detail(step)))
        elif step.kind == "message":
            events.append(Event(due, day(due), step.id, touchpoint.occurrence, step.kind, "send",
                                _join(_channels_text(pathway, step), held(due, original))))
        else:  # a task for staff (a call step): due here, retried only if the patient is not reached
            events.append(Event(due, day(due), step.id, touchpoint.occurrence, step.kind, "call",
                                _join(_task_detail(step), held(due, original))))
    order = {step.id: index for index, step in enumerate(pathway.steps)}
    events.sort(key=lambda e: (e.at, EVENT_ORDER.get(e.event, 9), order[e.step_id], e.occurrence))
    return Preview(pathway, start, zone, tuple(events), tuple(windows), tuple(_on_demand(pathway)))


def _channels_text(pathway: Pathway, step: MessageStep) -> str:
    """`email`, or `wechat then sms` when every language has the same order, else the order per language."""
    orders = {locale: " then ".join(order) for locale, order in step_channels(pathway, step).items()}
    if len(set(orders.values())) == 1:
        return next(iter(orders.values()))
    return ", ".join(f"{locale}: {order}" for locale, order in orders.items())


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def _expiry_detail(step: Any) -> str:
    actions = _describe_actions(step.on_expire) if step.on_expire else ""
    return f"closes if unanswered{': ' + actions if actions else ''}"


def _task_detail(step: Any) -> str:
    detail = f"team {step.team}" if getattr(step, "team", None) else ""
    retry = getattr(step, "retry", None)
    if retry is not None and retry.times > 1:
        detail = _join(detail, f"if not reached, again after {format_duration(retry.every)}, "
                               f"{retry.times} attempts in all")
    return detail


def _describe_actions(actions: Any) -> str:
    parts = [*(f"tag {tag}" for tag in actions.tag), *(f"send {step}" for step in actions.send),
             *(f"call {step}" for step in getattr(actions, "call", []))]
    if actions.escalate:
        parts.append(f"escalate '{actions.escalate.reason}'")
    if actions.stop:
        parts.append("stop the pathway")
    return ", ".join(parts)


def _on_demand(pathway: Pathway) -> list[OnDemand]:
    """Steps without a day of their own, each with what starts them: a birthday or holiday, the step it comes
    `after`, rules (send: / call:), the reach call."""
    starters: dict[str, list[str]] = {}
    for step in pathway.steps:
        if step.at is not None and step.at.occasion:
            starters.setdefault(step.id, []).append(step.at.text)  # its dates are known at enrollment
        if step.after is not None:
            starters.setdefault(step.id, []).append(
                f"{step.after.step} {step.after.state.replace('_', ' ')} + {format_duration(step.after.delay)}")
        rules = [(f"rule {number}", rule) for number, rule in enumerate(getattr(step, "on", []), start=1)]
        for name in ("on_expire", "on_not_reached", "on_missed"):
            if getattr(step, name, None) is not None:
                rules.append((name, getattr(step, name)))
        for where, actions in rules:
            for target in [*actions.send, *getattr(actions, "call", [])]:
                starters.setdefault(target, []).append(f"{step.id} {where}")
    if pathway.reach is not None and pathway.reach.call is not None:
        starters.setdefault(pathway.reach.call, []).append("reach, when no channel reached the patient")
    return [OnDemand(step.id, step.kind, tuple(starters.get(step.id, ()))) for step in pathway.steps
            if step.at is None or step.at.occasion]


# --- text ----------------------------------------------------------------------------------------

EVENT_WORDS = {"send": "message", "open": "questionnaire opens", "reminder": "reminder", "expire": "expires",
               "call": "call due"}


def _header(result: Preview) -> list[str]:
    pathway = result.pathway
    window = f"; send window {pathway.send_window}" if pathway.send_window else ""
    return [f"{pathway.title} ({pathway.id} v{pathway.version})",
            f"Anchor {pathway.anchor}: {result.anchor:%Y-%m-%d %a %H:%M}; times in {result.zone}{window}"]


def _step_label(result: Preview, event: Event) -> str:
    return event.label if result.repeated(event.step_id) else event.step_id


def to_text(result: Preview) -> str:
    """A plain table, one line per event, in the order they happen."""
    labels = [_step_label(result, event) for event in result.events]
    width = max([len(label) for label in labels] + [4])
    lines = _header(result) + ["", f"{'day':>4}  {'date':<14}  {'time':<5}  {'step':<{width}}  event"]
    for event, label in zip(result.events, labels):
        lines.append(f"{event.day:>4}  {event.at:%a %Y-%m-%d}  {event.at:%H:%M}  {label:<{width}}  "
                     f"{EVENT_WORDS.get(event.event, event.event)}" + (f" ({event.detail})" if event.detail else ""))
    if result.on_demand:
        lines += ["", "Only when a rule starts them:"]
        width = max(len(item.step_id) for item in result.on_demand)
        for item in result.on_demand:
            by = "; ".join(item.started_by) or "no rule starts it"
            lines.append(f"  {item.step_id:<{width}}  {item.kind}, by {by}")
    lines += ["", _summary(result)]
    return "\n".join(lines) + "\n"


def _summary(result: Preview) -> str:
    counts = {name: sum(1 for e in result.events if e.event == name) for name in EVENT_ORDER}
    parts = [_count(counts["send"], "message"),
             f"{_count(counts['open'], 'questionnaire')} ({_count(counts['reminder'], 'reminder')})"]
    if counts["call"]:
        parts.append(_count(counts["call"], "call"))
    last = max((e.at for e in result.events), default=result.anchor)
    return f"{', '.join(parts)}; the last event on day {result.last_day} ({last:%a %Y-%m-%d})."


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


# --- JSON ----------------------------------------------------------------------------------------

def to_data(result: Preview) -> dict[str, Any]:
    pathway = result.pathway
    return {
        "pathway": {"id": pathway.id, "version": pathway.version, "title": pathway.title, "anchor": pathway.anchor},
        "anchor": result.anchor.isoformat(),
        "timezone": result.zone,
        "send_window": str(pathway.send_window) if pathway.send_window else None,
        "events": [{"day": e.day, "date": e.at.date().isoformat(), "weekday": f"{e.at:%a}", "time": f"{e.at:%H:%M}",
                    "at": e.at.isoformat(), "step": e.step_id, "occurrence": e.occurrence, "kind": e.kind,
                    "event": e.event, "detail": e.detail} for e in result.events],
        "questionnaire_windows": [{"step": w.step_id, "occurrence": w.occurrence, "opens": w.opens.isoformat(),
                                   "reminders": [r.isoformat() for r in w.reminders], "expires": w.expires.isoformat()}
                                  for w in result.windows],
        "on_demand": [{"step": item.step_id, "kind": item.kind, "started_by": list(item.started_by)}
                      for item in result.on_demand],
    }


def to_json(result: Preview) -> str:
    return json.dumps(to_data(result), ensure_ascii=False, indent=2) + "\n"


# --- HTML ----------------------------------------------------------------------------------------

WIDTH, LABELS, RIGHT = 1120, 220, 24
AXIS, LANE = 46, 30


@dataclass(frozen=True)
class _Lane:
    step_id: str
    kind: str
    y: float
    note: str = ""


def to_html(result: Preview) -> str:
    """A self-contained page: a picture of the timeline (one lane per step), a legend and a table."""
    days = result.last_day + 1
    scale = (WIDTH - LABELS - RIGHT) / days
    tz = ZoneInfo(result.zone)
    midnight = result.anchor.date()

    def x(moment: datetime) -> float:
        local = moment.astimezone(tz)
        fraction = (local.hour * 60 + local.minute) / 1440
        return round(LABELS + ((local.date() - midnight).days + fraction) * scale, 1)

    order = [step.id for step in result.pathway.steps]
    timed = sorted({e.step_id for e in result.events},
                   key=lambda step_id: (min(e.at for e in result.events if e.step_id == step_id), order.index(step_id)))
    lanes = [_Lane(step_id, result.pathway.step(step_id).kind, AXIS + index * LANE + LANE / 2)
             for index, step_id in enumerate(timed)]
    for item in result.on_demand:
        lanes.append(_Lane(item.step_id, item.kind, AXIS + len(lanes) * LANE + LANE / 2,
                           "only when " + ("; ".join(item.started_by) or "a rule") + " starts it"))
    lane_y = {lane.step_id: lane.y for lane in lanes}
    every = 1 if scale >= 22 else (2 if scale >= 11 else 7)
    # A date under every week's first day, where it fits before the right edge.
    ticks = [{"x": round(LABELS + d * scale, 1), "day": d, "label": d % every == 0 and d < days,
              "week": d % 7 == 0 and LABELS + d * scale + 72 <= WIDTH,
              "date": midnight + timedelta(days=d), "weekend": d < days and (midnight + timedelta(days=d)).weekday() >= 5}
             for d in range(days + 1)]
    windows = [{"window": w, "x1": x(w.opens), "x2": x(w.expires), "y": lane_y[w.step_id],
                "reminders": [x(r) for r in w.reminders]} for w in result.windows]
    markers = [{"event": e, "x": x(e.at), "y": lane_y[e.step_id]} for e in result.events if e.event in ("send", "call")]
    height = AXIS + len(lanes) * LANE + 12
    return _template().render(
        result=result, pathway=result.pathway, lanes=lanes, ticks=ticks, windows=windows, markers=markers,
        width=WIDTH, height=height, labels=LABELS, right=RIGHT, scale=scale, axis=AXIS, lane=LANE,
        words=EVENT_WORDS, summary=_summary(result), step_label=lambda e: _step_label(result, e),
        plot_right=WIDTH - RIGHT,
    )


@lru_cache(maxsize=1)
def _template():
    environment = Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=True,
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return environment.get_template("preview.html.j2")


def render(result: Preview, output_format: str) -> str:
    """text, json or html."""
    return {"text": to_text, "json": to_json, "html": to_html}[output_format](result)
