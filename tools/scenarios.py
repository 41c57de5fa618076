"""Pathway scenario tests: "given these answers, this is what happens to the patient", checked.

An author writes pathways/tests/<pathway-id>.yaml: the pathway, an anchor date, a patient, and
scenarios, each with the patient's answers per questionnaire occurrence (the `carepath simulate
--answers` format), optional staff actions, and optional expectations (status, tags, escalations,
messages). `carepath test` runs every scenario on the time-skipping Temporal server through the
real worker, database and SMTP sink, one after another in one environment, and compares what
happened, as dated event lines in the patient's zone, with the golden file beside the scenarios
(<pathway-id>.golden.txt). `carepath test --update` rewrites the golden file, so a reviewer sees
a change to a pathway as a diff of what happens to patients, day by day.

The time-skipping server's clock only moves forward and starts at today's date, so each scenario
runs at a later anchor whose local calendar is the same as the one written (same weekdays, same
UTC offsets and DST changes over the pathway's span), and every time is reported back on the
written calendar: the output is the same whenever and in whatever order scenarios run.

Extending the format with a staff action (acknowledging an escalation, recording a call outcome):
add an optional field to `Action` and a performer to `PERFORMERS`; `Action.moment` decides when it
happens, and may return None until what it waits for (an escalation, say) has happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from math import ceil
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, Field, ValidationError, model_validator
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from services.enrollments import Enrolled
from services.responses import Accepted, QuestionnaireClosed
from tools.simulation import (
    AnswerScript,
    ScriptedAnswer,
    Stack,
    answer_as_scripted,
    local_stack,
    parse_answer_script,
    time_skipping_environment,
)
from language.loader import DocumentInvalid, Location
from language.model import At, LanguageModel, Locale, Pathway, Slug, ZoneName
from language.plan import anchor_instant, compile_plan, questionnaire_window
from language.schema_errors import schema_problems
from language.timing import Timing, parse_anchor
from services.site import Site, load_document_file
from workflows.contracts import CallOutcome, CancelRequest, StaffAction, Timeline, escalation_workflow_id
from workflows.escalation import EscalationWorkflow
from workflows.pathway import PathwayWorkflow

REAL_TIME_LIMIT = 60.0
"""Seconds of real time one scenario may take; weeks of virtual time normally pass in about one."""


# --- the file format ------------------------------------------------------------------------------


def _check_anchor(text: str) -> str:
    parse_anchor(text)
    return text


AnchorText = Annotated[str, AfterValidator(_check_anchor), Field(examples=["2026-12-01"])]


class Patient(LanguageModel):
    """Who is enrolled: only what changes what happens."""

    locale: Locale | None = Field(default=None, description="the patient's language (default: the pathway's first)",
                                  examples=["zh-CN"])
    timezone: ZoneName | None = Field(default=None, description="the patient's zone (default: the pathway's)")


class CallOutcomeAction(LanguageModel):
    step: Slug = Field(description="the call step's id")
    outcome: Literal["reached", "not_reached"] = Field(description="whether staff reached the patient")
    values: dict[str, bool | int | float | str] = Field(default_factory=dict,
                                                        description="what staff measured, e.g. {systolic: 150}")


class Action(LanguageModel):
    """Something staff do during the scenario. Exactly one action per entry."""

    at: At = Field(description="when staff act, written like a step's `at`", examples=["day 10 09:00"])
    cancel: str | None = Field(default=None, min_length=1, description="cancel the enrollment, giving this reason",
                               examples=["readmitted to hospital"])
    call_outcome: CallOutcomeAction | None = Field(
        default=None, description="record the outcome of the call step's open task",
        examples=[{"step": "no-response-call", "outcome": "not_reached"}])
    acknowledge: str | None = Field(
        default=None, min_length=1, description="acknowledge the open escalation with this reason, for its latest team",
        examples=["PHQ-9 score 10 or more after birth"])

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        chosen = [name for name in PERFORMERS if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(f"each action names exactly one of: {', '.join(PERFORMERS)}")
        return self

    @property
    def name(self) -> str:
        return next(name for name in PERFORMERS if getattr(self, name) is not None)

    def moment(self, run: ScenarioRun) -> datetime | None:
        """When the action happens (None: not known yet, because what it waits for has not happened)."""
        return run.instant(self.at)


class ExpectedEscalation(LanguageModel):
    reason: str = Field(min_length=1, description="the rule's reason, word for word")
    priority: Literal["urgent", "high", "routine"] | None = Field(default=None, description="if it matters")
    at: At | None = Field(default=None, description="day N HH:MM, if it matters")


class ExpectedMessage(LanguageModel):
    step: Slug = Field(description="the message or questionnaire step")
    purpose: str | None = Field(default=None, description="scheduled, invitation, reminder-1, ...")
    at: At | None = Field(default=None, description="day N HH:MM, if it matters")


class Expect(LanguageModel):
    """What must be true at the end; the golden file holds everything else that happened."""

    status: Literal["completed", "cancelled", "stopped"] | None = Field(default=None)
    tags: list[Slug] | None = Field(default=None, description="exactly these tags, in any order")
    escalations: list[ExpectedEscalation] | None = Field(default=None, description="exactly these, in order")
    messages: list[ExpectedMessage] = Field(default_factory=list, description="each was sent (others may be too)")


class Scenario(LanguageModel):
    name: str = Field(min_length=1, max_length=120, description="what the scenario shows, in a few words")
    anchor: AnchorText | None = Field(default=None, description="overrides the file's anchor")
    patient: Patient | None = Field(default=None, description="overrides the file's patient")
    answers: dict[Slug, Any] = Field(
        default_factory=dict, description="per questionnaire step, one entry per occurrence: "
                                          "{after: 2h, answers: {...}} or 'no answer' (the default)")
    actions: list[Action] = Field(default_factory=list, description="what staff do, and when")
    expect: Expect | None = Field(default=None)


class ScenarioFile(LanguageModel):
    pathway: str = Field(min_length=1, description="the pathway file, relative to this file",
                         examples=["../postnatal-42d.yaml"])
    anchor: AnchorText = Field(description="the anchor date every scenario uses unless it gives its own")
    patient: Patient = Field(default_factory=Patient, description="the patient every scenario uses unless it gives its own")
    scenarios: list[Scenario] = Field(min_length=1)


@dataclass
class Loaded:
    """A checked scenario file: its pathway, and each scenario's answer script."""

    path: Path
    spec: ScenarioFile
    pathway: Pathway
    scripts: list[AnswerScript]
    site: Site

    @property
    def golden(self) -> Path:
        return golden_path(self.path)


def golden_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.golden.txt")


def load_scenarios(path: Path | str, site: Site) -> Loaded:
    """Read and check a scenario file and its pathway; DocumentInvalid lists every problem at its line.

    Like pathway validation, everything is reported in one pass: a scenario whose shape is wrong is
    reported, and the others are still checked against the pathway.
    """
    path = Path(path)
    document = load_document_file(path)
    data = document.data if isinstance(document.data, dict) else {}
    if not isinstance(document.data, dict):
        raise DocumentInvalid([document.problem((), "a scenario file is a mapping: pathway, anchor, patient, scenarios")])
    problems = []
    try:
        spec: ScenarioFile | None = ScenarioFile.model_validate(data)
    except ValidationError as error:
        spec, problems = None, schema_problems(document, error, ScenarioFile)
    if not isinstance(data.get("pathway"), str) or not data["pathway"]:
        raise DocumentInvalid(problems)
    pathway_file = path.parent / data["pathway"]
    try:
        pathway = site.load_pathway(pathway_file)
    except OSError as error:
        raise DocumentInvalid([*problems, document.problem(
            ("pathway",), f"cannot read {pathway_file}: {error.strerror or error}")]) from None
    found: list[tuple[Location, str]] = []
    raw = data["scenarios"] if isinstance(data.get("scenarios"), list) else []
    names = [item.get("name") if isinstance(item, dict) else None for item in raw]
    scripts = []
    for index, item in enumerate(raw):
        if isinstance(names[index], str) and names.count(names[index]) > 1:
            found.append((("scenarios", index, "name"), f"'{names[index]}' names {names.count(names[index])} "
                                                        "scenarios; names must be unique"))
        try:
            scenario = Scenario.model_validate(item)
        except ValidationError:
            continue  # reported above, at its place
        where = ("scenarios", index, "answers")
        script, wrong = _answer_script(pathway, scenario, where, site.instruments)
        scripts.append(script)
        found += wrong or (_coinciding_answers(pathway, spec, scenario, script, where) if spec else [])
    problems += [document.problem(location, message) for location, message in found]
    if problems or spec is None:
        raise DocumentInvalid(problems)
    return Loaded(path, spec, pathway, scripts, site)


def _answer_script(pathway: Pathway, scenario: Scenario, where: Location,
                   instruments: dict) -> tuple[AnswerScript, list[tuple[Location, str]]]:
    """The answers as tools.simulation reads them, each checked against its step and instrument."""
    problems: list[tuple[Location, str]] = []
    script: AnswerScript = {}
    occurrences = {}
    for touchpoint in compile_plan(pathway, date(2000, 1, 3), pathway.timezone):
        occurrences[touchpoint.step_id] = touchpoint.occurrence
    questionnaires = {step.id: step for step in pathway.steps if step.kind == "questionnaire"}
    for step_id, entries in scenario.answers.items():
        place = (*where, step_id)
        if step_id not in questionnaires:
            problems.append((place, f"'{step_id}' is not a questionnaire step of {pathway.id}; "
                                    f"its questionnaires: {', '.join(questionnaires) or 'none'}"))
            continue
        if not isinstance(entries, list):
            problems.append((place, "expected a list with one entry per occurrence ('no answer' or {after:, answers:})"))
            continue
        if len(entries) > occurrences.get(step_id, 0):
            problems.append(((*place, occurrences.get(step_id, 0)),
                             f"{step_id} opens {occurrences.get(step_id, 0)} time(s); this is one answer too many"))
        instrument = instruments.get(questionnaires[step_id].instrument)
        script[step_id] = []
        for number, entry in enumerate(entries):
            try:
                [answer] = parse_answer_script({step_id: [entry]})[step_id]
            except ValueError as error:
                problems.append(((*place, number), str(error).replace(" occurrence 1:", ":")))
                continue
            script[step_id].append(answer)
            if answer.answers is not None and instrument is not None:
                for item, message in instrument.validate_answers(answer.answers).items():
                    location = (*place, number, "answers", item) if item in answer.answers else (*place, number, "answers")
                    problems.append((location, f"{item}: {message}"))
    return script, problems


def _coinciding_answers(pathway: Pathway, spec: ScenarioFile, scenario: Scenario, script: AnswerScript,
                        where: Location) -> list[tuple[Location, str]]:
    """An answer given at the very moment a reminder or the expiry falls due would race it: refuse."""
    zone = (scenario.patient and scenario.patient.timezone) or spec.patient.timezone or pathway.timezone
    anchor = parse_anchor(scenario.anchor or spec.anchor)
    problems = []
    for touchpoint in compile_plan(pathway, anchor, zone):
        answers = script.get(touchpoint.step_id, [])
        if touchpoint.kind != "questionnaire" or touchpoint.occurrence > len(answers):
            continue
        answer = answers[touchpoint.occurrence - 1]
        reminders, expires = questionnaire_window(pathway, pathway.step(touchpoint.step_id), touchpoint.due, zone)
        moment = touchpoint.due + answer.after
        if answer.answers is not None and (moment in reminders or moment == expires):
            what = "the questionnaire expires" if moment == expires else "a reminder falls due"
            problems.append(((*where, touchpoint.step_id, touchpoint.occurrence - 1, "after"),
                             f"answered at the very moment {what}, which of the two comes first is chance; "
                             "answer a minute earlier or later"))
    return problems


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

    environment: WorkflowEnvironment
    stack: Stack
    pathway: Pathway
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


async def _cancel(run: ScenarioRun, action: Action) -> str:
    await run.enrolled.workflow.execute_update(PathwayWorkflow.cancel, CancelRequest(reason=action.cancel))
    return f"cancel: {action.cancel}"


async def _call_outcome(run: ScenarioRun, action: Action) -> str:
    wanted = action.call_outcome
    timeline = await run.enrolled.workflow.query(PathwayWorkflow.timeline)
    entry = next((e for e in timeline.entries if e.kind == "call" and e.step_id == wanted.step and e.status == "open"),
                 None)
    if entry is None:
        return f"call {wanted.step}: no open task"
    await run.enrolled.workflow.execute_update(PathwayWorkflow.record_call_outcome, CallOutcome(
        step_id=wanted.step, occurrence=entry.occurrence, outcome=wanted.outcome, staff_id="scenario-staff",
        values=wanted.values))
    return f"call {entry.key} attempt {entry.attempts}: {wanted.outcome}"


async def _acknowledge(run: ScenarioRun, action: Action) -> str:
    timeline = await run.enrolled.workflow.query(PathwayWorkflow.timeline)
    for event in timeline.events:
        if event.kind != "escalation":
            continue
        handle = run.stack.client.get_workflow_handle_for(
            EscalationWorkflow.run, escalation_workflow_id(event.escalation_id))
        state = await handle.query(EscalationWorkflow.state)
        if state.reason == action.acknowledge and state.status == "open":
            team = state.notified[-1].team
            await handle.execute_update(EscalationWorkflow.acknowledge, StaffAction(staff_id="scenario-staff", team=team))
            return f"acknowledge {action.acknowledge} (tier {state.notified[-1].tier}, {team})"
    return f"acknowledge {action.acknowledge}: no open escalation"


PERFORMERS: dict[str, Callable[[ScenarioRun, Action], Awaitable[str]]] = {
    "cancel": _cancel, "call_outcome": _call_outcome, "acknowledge": _acknowledge}
"""Staff actions a scenario can take, by the key that names them in `actions:`."""


@dataclass
class _Answer:
    step_id: str
    occurrence: int
    scripted: ScriptedAnswer

    def moment(self, run: ScenarioRun, timeline: Timeline) -> datetime | None:
        entry = next((e for e in timeline.entries if e.step_id == self.step_id and e.occurrence == self.occurrence), None)
        return entry.due + self.scripted.after if entry is not None else None


@dataclass
class ScenarioResult:
    name: str
    lines: list[str]
    failures: list[str]
    aborted: bool = False  # it could not be played to its end: the environment may be unusable now


# Within one minute, what happened first is shown first: the cause, then what it led to.
RANK = {"staff": 0, "sent": 1, "answered": 2, "refused": 2, "rule": 3, "expired": 4, "tag": 5, "call": 5, "escalation": 6,
        "sent by rule": 7, "stop": 8, "cancelled": 9}


async def run_scenario(environment: WorkflowEnvironment, stack: Stack, loaded: Loaded, index: int) -> ScenarioResult:
    scenario, pathway = loaded.spec.scenarios[index], loaded.pathway
    zone = (scenario.patient and scenario.patient.timezone) or loaded.spec.patient.timezone or pathway.timezone
    locale = (scenario.patient and scenario.patient.locale) or loaded.spec.patient.locale or pathway.locales[0]
    anchor = parse_anchor(scenario.anchor or loaded.spec.anchor)
    written_anchor = anchor_instant(anchor, zone)
    shift = equivalent_shift(anchor, zone, _span_days(pathway, written_anchor, zone, scenario),
                             await environment.get_current_time() + timedelta(days=1))
    run_anchor = anchor + shift if isinstance(anchor, date) and not isinstance(anchor, datetime) else _wall(written_anchor, shift)
    patient = await stack.add_patient(locale=locale, timezone=zone)
    enrolled = await stack.enroll(patient, pathway, run_anchor)
    run = ScenarioRun(environment, stack, pathway, enrolled, ZoneInfo(zone), written_anchor, shift)
    failures: list[str] = []
    try:
        await _play(run, loaded.scripts[index], scenario.actions, failures)
        timeline = await _finished(enrolled)
    except ScenarioError as error:
        await _abandon(enrolled)
        return ScenarioResult(scenario.name, [], [str(error)], aborted=True)
    except Exception as error:  # the server or the workflow gave up: say why, never a traceback
        failure = await _workflow_task_failure(enrolled)
        await _abandon(enrolled)
        return ScenarioResult(scenario.name, [], [f"the pathway's workflow failed: {failure}" if failure else
                                                  f"could not run: {_causes(error)}"], aborted=True)
    await _record_outcome(run, timeline)
    lines = [_dated(run, moment, text) for moment, _, text in
             sorted(run.lines, key=lambda line: (run.written(line[0]).replace(second=0, microsecond=0), line[1]))]
    lines.append(f"end: {timeline.status}" + (f" ({timeline.cancel_reason})" if timeline.cancel_reason else "")
                 + f"; tags: {', '.join(timeline.tags) or 'none'}")
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
    return max([(last - anchor).days + tail.days, *actions]) + 30


class ScenarioError(Exception):
    """The scenario could not be played to its end (the reason is for the author)."""


async def _play(run: ScenarioRun, script: AnswerScript, actions: list[Action], failures: list[str]) -> None:
    """Answers and staff actions, each at its moment, in time order, as the pathway unfolds."""
    pending: list[_Answer | Action] = [
        _Answer(step_id, number, answer) for step_id, answers in script.items()
        for number, answer in enumerate(answers, start=1) if answer.answers is not None]
    pending += actions
    while pending:
        timeline = await run.enrolled.workflow.query(PathwayWorkflow.timeline)
        moments = [(item.moment(run, timeline) if isinstance(item, _Answer) else item.moment(run), order, item)
                   for order, item in enumerate(pending)]
        ready = sorted((m for m in moments if m[0] is not None), key=lambda m: (m[0], m[1]))
        if not ready:
            failures += [f"never happened: {_describe(item)}" for item in pending]
            return
        moment, _, item = ready[0]
        pending.remove(item)
        wait = moment - await run.environment.get_current_time()
        if wait > timedelta(0):
            await _watched(run.enrolled, run.environment.sleep(wait), "letting time pass")
        if isinstance(item, _Answer):
            await _answer(run, item)
        else:
            await _act(run, item, moment)


def _describe(item: _Answer | Action) -> str:
    return f"answer to {item.step_id} #{item.occurrence}" if isinstance(item, _Answer) else f"action {item.name}"


async def _answer(run: ScenarioRun, item: _Answer) -> None:
    script = {item.step_id: [ScriptedAnswer(None)] * (item.occurrence - 1) + [item.scripted]}
    moment = await run.environment.get_current_time()
    key = f"{item.step_id}#{item.occurrence}"
    try:
        [result] = await _watched(run.enrolled, answer_as_scripted(run.environment, run.stack, run.enrolled, script),
                                  f"answering {key}")
    except ScenarioError:
        raise
    except Exception as error:  # e.g. answers the instrument refuses after all
        raise ScenarioError(f"answer to {key} failed: {error}") from None
    if isinstance(result, QuestionnaireClosed):
        run.record(moment, RANK["refused"], f"refused     {key}: {result}")
    elif isinstance(result, Accepted):
        for error in result.outcome.errors:
            run.record(moment, RANK["rule"], f"rule        {key}: {error}")


async def _act(run: ScenarioRun, action: Action, moment: datetime) -> None:
    try:
        done = await _watched(run.enrolled, PERFORMERS[action.name](run, action), f"staff action {action.name}")
        run.record(moment, RANK["staff"], f"staff       {done}")
    except WorkflowUpdateFailedError as refused:
        cause = getattr(refused.cause, "message", None) or str(refused)
        run.record(moment, RANK["staff"], f"staff       {action.name} refused: {cause}")


async def _finished(enrolled: Enrolled) -> Timeline:
    return await _watched(enrolled, enrolled.workflow.result(), "waiting for the enrollment to finish")


async def _watched(enrolled: Enrolled, awaitable: Awaitable[Any], doing: str) -> Any:
    """Await something that lets virtual time run, failing fast if the workflow is broken (an exception
    in workflow code is retried forever, silently) or waits for something that never comes."""
    task = asyncio.ensure_future(awaitable)
    waited = 0.0
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=1.0)
            waited += 1.0
            if task.done():
                break
            if failure := await _workflow_task_failure(enrolled):
                raise ScenarioError(f"the pathway's workflow failed: {failure}")
            if waited >= REAL_TIME_LIMIT:
                raise ScenarioError(f"{doing}: nothing happened for {REAL_TIME_LIMIT:g} s; is the enrollment "
                                    "waiting for a staff action the scenario does not take?")
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _causes(error: BaseException) -> str:
    """An error and what caused it, in one line: `Workflow execution failed: Workflow timed out`."""
    parts, seen = [], set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(str(getattr(current, "message", None) or current) or type(current).__name__)
        current = getattr(current, "cause", None) or current.__cause__
    return f"{type(error).__name__}: " + ": ".join(parts)


async def _abandon(enrolled: Enrolled) -> None:
    """End a scenario's workflow that cannot go on, so that it does not hold up the next scenario."""
    try:
        await enrolled.workflow.terminate(reason="scenario abandoned")
    except Exception:
        pass  # already closed


async def _workflow_task_failure(enrolled: Enrolled) -> str | None:
    """Why the workflow's code failed, if it did (an exception in the workflow is retried forever, silently)."""
    try:
        async for event in enrolled.workflow.fetch_history_events():
            if event.HasField("workflow_task_failed_event_attributes"):
                return event.workflow_task_failed_event_attributes.failure.message or "workflow task failed"
    except Exception:
        return None
    return None


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
        name = {"tag": "tag", "escalation": "escalation", "stop": "stop"}[event.kind]
        run.record(event.at, RANK[name], f"{name:<11} {event.detail}")


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
