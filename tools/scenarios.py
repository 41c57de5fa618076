"""Pathway scenario tests: "given these answers, this is what happens to the patient", checked.

`carepath test` runs every scenario of pathways/tests/<pathway-id>.yaml (the format:
tools/scenario_format.py) on the time-skipping Temporal server through the real worker, database
and SMTP sink, played by tools.driver, and compares what happened, as dated event lines in the
patient's zone, with the golden file beside the scenarios (<pathway-id>.golden.txt). `carepath test
--update` rewrites the golden file, so a reviewer sees a change to a pathway as a diff of what
happens to patients, day by day. A scenario that ends with the enrollment waiting for staff (a call
with no outcome given) ends its golden section with `waiting for staff: ...` instead of `end: ...`.

The time-skipping server's clock only moves forward and starts at today's date, so each scenario
runs at a later anchor whose local calendar is the same as the one written (same weekdays, same
UTC offsets and DST changes over the pathway's span), and every time is reported back on the
written calendar: the output is the same whenever and in whatever order scenarios run.
"""

from __future__ import annotations

import contextlib
import difflib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from math import ceil
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from language.model import Pathway
from language.plan import anchor_instant, compile_plan
from language.timing import Timing, parse_anchor
from services.enrollments import Enrolled
from services.site import Site
from tools.driver import Planned, PlayFailed, Script, abandon, play
from tools.scenario_format import Expect, ExpectedEscalation, Loaded, Scenario
from tools.simulation import (
    SIMULATED_ADDRESSES,
    Stack,
    local_stack,
    time_skipping_environment,
)
from workflows.contracts import Timeline

# --- running --------------------------------------------------------------------------------------


def equivalent_shift(anchor: date | datetime, zone: str, span_days: int, not_before: datetime) -> timedelta:
    """Whole weeks to move `anchor` by so that it falls after `not_before` on the same local calendar.

    Same weekdays, and the same UTC offset at every half hour of the span (so the same DST changes on
    the same days): times on the moved calendar map back to the written one by subtracting the shift.
    """
    tz = ZoneInfo(zone)
    start = anchor_instant(anchor, zone)

    def offsets(first: date) -> Iterator[timedelta | None]:
        for day in range(-1, span_days + 2):
            when = first + timedelta(days=day)
            for minutes in range(0, 1440, 30):
                moment = datetime.combine(when, time(minutes // 60, minutes % 60))
                yield moment.replace(tzinfo=tz, fold=0).utcoffset()
                yield moment.replace(tzinfo=tz, fold=1).utcoffset()

    reference = list(offsets(start.date()))
    weeks = max(0, ceil(((not_before - start).total_seconds() / 86_400 + 1) / 7))
    for week in range(weeks, weeks + 52 * 60):
        shift = timedelta(weeks=week)
        if all(a == b for a, b in zip(reference, offsets(start.date() + shift))):
            return shift
    raise ValueError(f"no later calendar in {zone} matches the one around {start:%Y-%m-%d}")


@dataclass
class ScenarioRun:
    """One scenario under way: its enrollment, and the mapping between the run's calendar and the written one."""

    stack: Stack
    enrolled: Enrolled
    zone: ZoneInfo
    written_anchor: datetime  # the anchor instant as written, in the patient's zone
    shift: timedelta
    lines: list[tuple[datetime, int, str]] = field(default_factory=list)

    @property
    def anchor(self) -> datetime:
        return _wall(self.written_anchor, self.shift)

    def instant(self, timing: Timing) -> datetime:
        """`day N HH:MM` (or `day N +2h`, or a duration) on this run's calendar."""
        if timing.clock is not None:
            return datetime.combine(self.anchor.date() + timedelta(days=timing.days), timing.clock, tzinfo=self.zone)
        return (_wall(self.anchor, timedelta(days=timing.days)).astimezone(timezone.utc) + timing.offset)

    def written(self, moment: datetime) -> datetime:
        """A moment of this run, on the calendar the author wrote."""
        return _wall(moment.astimezone(self.zone), -self.shift)

    def day_and_time(self, moment: datetime) -> str:
        local = self.written(moment)
        day = (local.date() - self.written_anchor.date()).days
        clock = f"{local:%H:%M}" if local.second == 0 else f"{local:%H:%M:%S}"
        return f"day {day} {clock}"

    def record(self, moment: datetime, rank: int, text: str) -> None:
        self.lines.append((moment, rank, text))


def _wall(moment: datetime, days: timedelta) -> datetime:
    """The same local wall-clock time `days` later (fold kept)."""
    naive = moment.replace(tzinfo=None) + days
    return naive.replace(tzinfo=moment.tzinfo, fold=moment.fold)

@dataclass
class ScenarioResult:
    name: str
    lines: list[str]
    failures: list[str]
    aborted: bool = False  # it could not be played to its end: the environment may be unusable now


# Within one minute, what happened first is shown first: the cause, then what it led to.
RANK = {"staff": 0, "sent": 1, "answered": 2, "refused": 2, "rule": 3, "expired": 4, "tag": 5, "call": 5, "escalation": 6,
        "sent by rule": 7, "stop": 8, "cancelled": 9, "migration": 1, "event": 2}


async def run_scenario(environment: WorkflowEnvironment, stack: Stack, loaded: Loaded, index: int) -> ScenarioResult:
    scenario = loaded.spec.scenarios[index]
    pathway = loaded.versions[scenario.version] if scenario.version else loaded.pathway
    zone = (scenario.patient and scenario.patient.timezone) or loaded.spec.patient.timezone or pathway.timezone
    locale = (scenario.patient and scenario.patient.locale) or loaded.spec.patient.locale or pathway.locales[0]
    anchor = parse_anchor(scenario.anchor or loaded.spec.anchor)
    written_anchor = anchor_instant(anchor, zone)
    shift = equivalent_shift(anchor, zone, _span_days(pathway, written_anchor, zone, scenario),
                             await environment.get_current_time() + timedelta(days=1))
    run_anchor = anchor + shift if isinstance(anchor, date) and not isinstance(anchor, datetime) else _wall(written_anchor, shift)
    patient = await stack.add_patient(locale=locale, timezone=zone, **SIMULATED_ADDRESSES)
    enrolled = await stack.enroll(patient, pathway, run_anchor)
    run = ScenarioRun(stack, enrolled, ZoneInfo(zone), written_anchor, shift)
    script = loaded.scripts[index]
    script = Script(script.answers, script.calls, [Planned(run.instant(action.at), action.deed(loaded.versions, run.instant))
                                                   for action in scenario.actions])
    try:
        played = await play(environment, stack, pathway, enrolled, script, run.day_and_time)
    except PlayFailed as failed:
        return ScenarioResult(scenario.name, [], [str(failed)], aborted=True)
    finally:
        await abandon(enrolled)  # a scenario that ends waiting for staff must not hold the clock of the next
    timeline = played.timeline
    for happened in played.happened:
        run.record(happened.moment, RANK[happened.kind], f"{happened.kind:<11} {happened.text}")
    await _record_outcome(run, timeline)
    lines = [_dated(run, moment, text) for moment, _, text in
             sorted(run.lines, key=lambda line: (run.written(line[0]).replace(second=0, microsecond=0), line[1]))]
    tags = f"; tags: {', '.join(timeline.tags) or 'none'}"
    if played.waiting_for:
        lines.append(f"waiting for staff: {'; '.join(played.waiting_for)}{tags}")
    else:
        lines.append(f"end: {timeline.status}" + (f" ({timeline.cancel_reason})" if timeline.cancel_reason else "") + tags)
    failures = [f"never happened: answer to {step_id}#{number}" for step_id, answers in script.answers.items()
                for number, answer in enumerate(answers, start=1) if answer.answers is not None
                and not any(e.step_id == step_id and e.occurrence == number for e in timeline.entries)]
    if scenario.expect:
        failures += _unmet(run, scenario.expect, timeline)
    return ScenarioResult(scenario.name, lines, failures)


def _dated(run: ScenarioRun, moment: datetime, text: str) -> str:
    local = run.written(moment)
    day = (local.date() - run.written_anchor.date()).days
    clock = f"{local:%H:%M}" if local.second == 0 else f"{local:%H:%M:%S}"
    return f"day {day:>2} {local:%a %Y-%m-%d} {clock}  {text}"


def _span_days(pathway: Pathway, anchor: datetime, zone: str, scenario: Scenario) -> int:
    """Days from the anchor to the last thing that can happen, with room for what rules add."""
    plan = compile_plan(pathway, anchor, zone)
    last = max((t.due for t in plan), default=anchor)
    tail = max([getattr(step, "expire", timedelta(0)) for step in pathway.steps] + [timedelta(0)])
    actions = [action.at.days for action in scenario.actions]
    later = max([action.anchor.to.days for action in scenario.actions if action.anchor] + [0])
    return max([(last - anchor).days + tail.days + later, *actions]) + 30


async def _record_outcome(run: ScenarioRun, timeline: Timeline) -> None:
    """Everything that happened, from the channels and the workflow's timeline."""
    for delivery in await run.stack.deliveries(run.enrolled.enrollment.id, run.zone):
        entry = next((e for e in timeline.entries if e.step_id == delivery.step
                      and e.occurrence == delivery.occurrence), None)
        by_rule = entry is not None and (entry.detail or "").startswith("sent by")
        run.record(delivery.due, RANK["sent by rule" if by_rule else "sent"],
                   f"sent        {delivery.step}#{delivery.occurrence} {delivery.purpose} {delivery.channel}"
                   + (f" ({entry.detail})" if by_rule else ""))
    for entry in timeline.entries:
        if entry.kind == "questionnaire" and entry.status == "answered" and entry.response and entry.at:
            run.record(entry.at, RANK["answered"], f"answered    {entry.key}{_response(entry.response)}")
        elif entry.kind == "questionnaire" and entry.status == "expired" and entry.closes:
            run.record(entry.closes, RANK["expired"], f"expired     {entry.key}")
        elif entry.kind == "call":
            opened_by = f" ({entry.detail})" if (entry.detail or "").startswith("opened by") else ""
            run.record(entry.due, RANK["call"], f"call        {entry.key} opened{opened_by}")
            if entry.status in ("reached", "not_reached") and entry.at:
                run.record(entry.at, RANK["call"], f"{entry.status:<11} {entry.key} after {entry.attempts} attempt(s)")
        if entry.status in ("cancelled", "skipped", "failed") and entry.at:
            run.record(entry.at, RANK["cancelled"], f"{entry.status:<11} {entry.key} (planned for "
                                                    f"{run.day_and_time(entry.due)})")
    for event in timeline.events:
        if event.kind in ("pause", "resume", "anchor"):
            continue  # the staff line that did it says so
        run.record(event.at, RANK[event.kind], f"{event.kind:<11} {event.detail}")


def _response(response) -> str:
    parts = []
    if response.score is not None:
        parts.append(f"score {response.score:g}")
    if response.band:
        parts.append(f"band {response.band}")
    if response.flags:
        parts.append(f"flags {', '.join(response.flags)}")
    return f": {', '.join(parts)}" if parts else ""


def _unmet(run: ScenarioRun, expect: Expect, timeline: Timeline) -> list[str]:
    """The author's own expectations that the run did not meet, each said plainly."""
    failures = []
    if expect.status is not None and timeline.status != expect.status:
        failures.append(f"expected status {expect.status}, but the enrollment ended {timeline.status}")
    if expect.tags is not None and sorted(expect.tags) != sorted(timeline.tags):
        failures.append(f"expected tags [{', '.join(expect.tags)}], got [{', '.join(timeline.tags)}]")
    if expect.escalations is not None:
        actual = [event for event in timeline.events if event.kind == "escalation"]
        shown = [f"{run.day_and_time(e.at)} {e.detail}" for e in actual]
        if len(actual) != len(expect.escalations) or not all(
                _escalation_matches(run, wanted, event) for wanted, event in zip(expect.escalations, actual)):
            wanted = [" ".join(filter(None, [w.at and str(w.at), f"{w.priority}:" if w.priority else None, w.reason]))
                      for w in expect.escalations]
            failures.append("expected escalations:\n      " + ("\n      ".join(wanted) or "none")
                            + "\n    got:\n      " + ("\n      ".join(shown) or "none"))
    for wanted in expect.messages:
        if not any(line for moment, _, line in run.lines if line.startswith("sent ")
                   and line.split()[1].split("#")[0] == wanted.step
                   and (wanted.purpose is None or line.split()[2] == wanted.purpose)
                   and (wanted.at is None or run.day_and_time(moment) == _normal(wanted.at))):
            failures.append(f"expected a message: {wanted.step}"
                            + (f" ({wanted.purpose})" if wanted.purpose else "") + (f" at {wanted.at}" if wanted.at else ""))
    return failures


def _normal(at: Timing) -> str:
    return f"day {at.days} {at.clock:%H:%M}" if at.clock else str(at)


def _escalation_matches(run: ScenarioRun, wanted: ExpectedEscalation, event) -> bool:
    priority, _, rest = event.detail.partition(": ")
    return (rest.startswith(f"{wanted.reason} (") and (wanted.priority is None or wanted.priority == priority)
            and (wanted.at is None or run.day_and_time(event.at) == _normal(wanted.at)))


# --- golden files ---------------------------------------------------------------------------------

GOLDEN_HEADER = ("# Written by `carepath test --update` from {name}: what happened in each scenario, by day and\n"
                 "# local time on the scenario's calendar. Review a change here as a change to what patients get.\n")


def read_golden(path: Path) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    for line in text.splitlines():
        if line.startswith("== ") and line.endswith(" =="):
            current = sections.setdefault(line[3:-3], [])
        elif current is not None and line.strip() and not line.startswith("#"):
            current.append(line)
    return sections


def golden_text(loaded: Loaded, results: list[ScenarioResult]) -> str:
    parts = [GOLDEN_HEADER.format(name=loaded.path.name)]
    for result in results:
        parts.append(f"\n== {result.name} ==\n" + "".join(f"{line}\n" for line in result.lines))
    return "".join(parts)


def golden_diff(loaded: Loaded, expected: list[str] | None, result: ScenarioResult) -> str:
    """A unified diff of the dated event lines ('' when they agree)."""
    if expected == result.lines:
        return ""
    name = loaded.golden.name
    return "".join(difflib.unified_diff([f"{line}\n" for line in expected or []],
                                        [f"{line}\n" for line in result.lines],
                                        fromfile=f"{name}: {result.name}", tofile="this run", n=2))


@dataclass
class FileOutcome:
    loaded: Loaded
    results: list[ScenarioResult]
    diffs: dict[str, str]
    stale: list[str]  # golden sections for scenarios the file no longer has

    @property
    def failed(self) -> list[ScenarioResult]:
        return [r for r in self.results if r.failures or self.diffs.get(r.name)]


async def run_files(loaded_files: list[Loaded], *, on_result: Callable[[Loaded, ScenarioResult, str], None] | None = None
                    ) -> list[FileOutcome]:
    """Every scenario of every file, one after another, each in a fresh time-skipping environment:
    escalations outlive their pathway and would hold a shared server's clock still."""
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="carepath-test-") as workdir:
        resources = contextlib.AsyncExitStack()
        try:
            opened = 0
            for loaded in loaded_files:
                golden = read_golden(loaded.golden)
                results, diffs = [], {}
                for index in range(len(loaded.spec.scenarios)):
                    environment, stack = await _open(resources, Path(workdir), opened, loaded.site)
                    opened += 1
                    result = await run_scenario(environment, stack, loaded, index)
                    await resources.aclose()
                    diffs[result.name] = "" if result.aborted else golden_diff(loaded, golden.get(result.name), result)
                    results.append(result)
                    if on_result:
                        on_result(loaded, result, diffs[result.name])
                names = {r.name for r in results}
                outcomes.append(FileOutcome(loaded, results, diffs, [name for name in golden if name not in names]))
        finally:
            await resources.aclose()
    return outcomes


async def _open(resources: contextlib.AsyncExitStack, workdir: Path, number: int,
                site: Site) -> tuple[WorkflowEnvironment, Stack]:
    environment = await resources.enter_async_context(time_skipping_environment())
    folder = workdir / str(number)
    folder.mkdir()
    return environment, await resources.enter_async_context(local_stack(environment.client, folder, site))


def default_paths(pathways_dir: Path) -> list[Path]:
    return sorted((pathways_dir / "tests").glob("*.yaml"))
