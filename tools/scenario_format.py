"""The scenario file format (pathways/tests/<pathway-id>.yaml): its models, and loading with checks.

An author writes the pathway, an anchor date, a patient, and scenarios, each with the patient's
answers per questionnaire occurrence (the `carepath simulate --answers` format), call outcomes per
call attempt (the `--calls` format), staff actions at given times, and optional expectations
(status, tags, escalations, messages). tools/scenarios.py runs them.

Adding a staff action: an optional field on `Action`, its name in `ACTIONS`, and what it does as a
`tools.driver` deed (`Action.deed`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator

from language.events import EventInvalid, read_event
from language.loader import DocumentInvalid, Location
from language.model import At, LanguageModel, Locale, Pathway, Slug, ZoneName
from language.plan import compile_plan, questionnaire_window
from language.schema_errors import schema_problems
from language.timing import Timing, parse_anchor
from services.site import Site, load_document_file
from tools.deeds import (
    Acknowledge,
    Cancel,
    Migrate,
    MoveAnchor,
    Pause,
    RecordAttendance,
    RecordCallOutcome,
    Resume,
    SendEvent,
    StaffDeed,
)
from tools.driver import (
    AnswerScript,
    CallScript,
    Script,
    parse_answer_script,
    parse_call_script,
)

ACTIONS = ("cancel", "call_outcome", "acknowledge", "migrate_to", "pause", "resume", "anchor", "attendance",
           "event")
"""Staff actions a scenario can take, by the key that names them in `actions:`."""


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


class AnchorAction(LanguageModel):
    to: At = Field(description="the new anchor, counted from the scenario's anchor", examples=["day 3 00:00"])
    reason: str = Field(min_length=1, description="why staff move it", examples=["operation rescheduled"])


class AttendanceAction(LanguageModel):
    step: Slug = Field(description="the appointment step's id")
    outcome: Literal["attended", "missed"] = Field(description="whether the patient came")


class EventAction(LanguageModel):
    type: Slug = Field(description="an event the pathway declares", examples=["bp-reading"])
    values: dict[str, bool | int | float | str] = Field(default_factory=dict,
                                                        description="its fields, e.g. {systolic: 150, diastolic: 95}")


class Action(LanguageModel):
    """Something staff do during the scenario. Exactly one action per entry."""

    at: At = Field(description="when staff act, written like a step's `at`", examples=["day 10 09:00"])
    cancel: str | None = Field(default=None, min_length=1, description="cancel the enrollment, giving this reason",
                               examples=["readmitted to hospital"])
    call_outcome: CallOutcomeAction | None = Field(
        default=None, description="record the outcome of the call step's open attempt (there must be one)",
        examples=[{"step": "no-response-call", "outcome": "not_reached"}])
    acknowledge: str | None = Field(
        default=None, min_length=1, description="acknowledge the open escalation with this reason, for its latest team",
        examples=["PHQ-9 score 10 or more after birth"])
    migrate_to: int | None = Field(
        default=None, ge=1, description="migrate the enrollment to this version (one the file's `versions` names)",
        examples=[3])
    pause: str | None = Field(default=None, min_length=1, description="pause the enrollment, giving this reason",
                              examples=["readmitted"])
    resume: Literal[True] | None = Field(default=None, description="resume the paused enrollment", examples=[True])
    anchor: AnchorAction | None = Field(
        default=None, description="move the enrollment's anchor: what is to come is recomputed from it",
        examples=[{"to": "day 3 00:00", "reason": "operation rescheduled"}])
    attendance: AttendanceAction | None = Field(
        default=None, description="record attendance at the appointment step's visit (its time must have come)",
        examples=[{"step": "video-follow-up", "outcome": "attended"}])
    event: EventAction | None = Field(
        default=None, description="send an event into the enrollment, as a hospital system does",
        examples=[{"type": "bp-reading", "values": {"systolic": 152, "diastolic": 96}}])

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        chosen = [name for name in ACTIONS if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(f"each action names exactly one of: {', '.join(ACTIONS)}")
        return self

    def deed(self, versions: dict[int, Pathway], instant: Callable[[Timing], datetime]) -> StaffDeed:
        """`instant`: the run's moment for a time written like a step's `at`."""
        if self.pause is not None:
            return Pause(self.pause)
        if self.resume:
            return Resume()
        if self.anchor is not None:
            return MoveAnchor(instant(self.anchor.to), self.anchor.reason)
        if self.migrate_to is not None:
            return Migrate(versions[self.migrate_to])
        if self.cancel is not None:
            return Cancel(self.cancel)
        if self.event is not None:
            return SendEvent(self.event.type, self.event.values)
        if self.call_outcome is not None:
            return RecordCallOutcome(self.call_outcome.step, self.call_outcome.outcome, self.call_outcome.values)
        if self.attendance is not None:
            return RecordAttendance(self.attendance.step, self.attendance.outcome)
        return Acknowledge(self.acknowledge)


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

    status: Literal["completed", "cancelled", "stopped", "active"] | None = Field(
        default=None, description="how the enrollment ended; active: it still waits for staff")
    tags: list[Slug] | None = Field(default=None, description="exactly these tags, in any order")
    escalations: list[ExpectedEscalation] | None = Field(default=None, description="exactly these, in order")
    messages: list[ExpectedMessage] = Field(default_factory=list, description="each was sent (others may be too)")


class Scenario(LanguageModel):
    name: str = Field(min_length=1, max_length=120, description="what the scenario shows, in a few words")
    anchor: AnchorText | None = Field(default=None, description="overrides the file's anchor")
    patient: Patient | None = Field(default=None, description="overrides the file's patient")
    version: int | None = Field(default=None, ge=1, description="enroll on this version (one the file's `versions` "
                                                                "names) instead of the file's pathway", examples=[2])
    answers: dict[Slug, Any] = Field(
        default_factory=dict, description="per questionnaire step, one entry per occurrence: "
                                          "{after: 2h, answers: {...}} or 'no answer' (the default)")
    calls: Any = Field(
        default=None, description="call outcomes, as `carepath simulate --calls` reads them: reached or not_reached "
                                  "(every attempt, an hour after it opens), or per call step one entry per attempt: "
                                  "not_reached, reached or {outcome: reached, values: {...}, after: 2h}",
        examples=[{"no-response-call": ["not_reached", {"outcome": "reached", "values": {"systolic": 150}}]}])
    actions: list[Action] = Field(default_factory=list, description="what staff do, and when")
    expect: Expect | None = Field(default=None)


class ScenarioFile(LanguageModel):
    pathway: str = Field(min_length=1, description="the pathway file, relative to this file",
                         examples=["../postnatal-42d.yaml"])
    anchor: AnchorText = Field(description="the anchor date every scenario uses unless it gives its own")
    patient: Patient = Field(default_factory=Patient, description="the patient every scenario uses unless it gives its own")
    versions: dict[int, str] = Field(
        default_factory=dict, description="other versions of the pathway, which scenarios may enroll on (`version`) "
                                          "or migrate to (`migrate_to`): version number to file, relative to this file",
        examples=[{2: "versions/postnatal-42d-v2.yaml"}])
    scenarios: list[Scenario] = Field(min_length=1)


@dataclass
class Loaded:
    """A checked scenario file: its pathway, and each scenario's answers and call outcomes (the
    staff actions' moments depend on the run's calendar, see tools/scenarios.py)."""

    path: Path
    spec: ScenarioFile
    pathway: Pathway
    scripts: list[Script]
    site: Site
    versions: dict[int, Pathway]

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
    versions, found = _versions(path, data, pathway, site)
    versions[pathway.version] = pathway
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
        answers, wrong = _answer_script(pathway, scenario, where, site.instruments)
        calls, wrong_calls = _call_script(pathway, scenario, index, site.instruments)
        scripts.append(Script(answers, calls))
        found += _unknown_versions(scenario, index, versions)
        found += _event_problems(pathway, scenario, index)
        found += wrong_calls + (wrong or (_coinciding_answers(pathway, spec, scenario, answers, where) if spec else []))
    problems += [document.problem(location, message) for location, message in found]
    if problems or spec is None:
        raise DocumentInvalid(problems)
    return Loaded(path, spec, pathway, scripts, site, versions)


def _versions(path: Path, data: dict, pathway: Pathway, site: Site) -> tuple[dict[int, Pathway], list[tuple[Location, str]]]:
    """The other versions scenarios may name, each of the same pathway and numbered as its file says."""
    versions, problems = {}, []
    listed = data.get("versions") if isinstance(data.get("versions"), dict) else {}
    for key, file in listed.items():
        where = ("versions", key)
        if not str(key).isdigit():
            continue  # the schema says so
        number = int(key)
        try:
            version = site.load_pathway(path.parent / str(file))
        except OSError as error:
            problems.append((where, f"cannot read {path.parent / str(file)}: {error.strerror or error}"))
            continue
        if (version.id, version.version) != (pathway.id, number):
            problems.append((where, f"{file} is {version.id} version {version.version}, not {pathway.id} version {number}"))
            continue
        versions[number] = version
    return versions, problems


def _event_problems(pathway: Pathway, scenario: Scenario, index: int) -> list[tuple[Location, str]]:
    """An event action is one the pathway takes, with values that fit it: checked as the API checks it."""
    problems = []
    for number, action in enumerate(scenario.actions):
        if action.event is not None:
            try:
                read_event(pathway, action.event.type, action.event.values)
            except EventInvalid as invalid:
                problems.append((("scenarios", index, "actions", number, "event"), str(invalid)))
    return problems


def _unknown_versions(scenario: Scenario, index: int, versions: dict[int, Pathway]) -> list[tuple[Location, str]]:
    """A scenario enrolls on, and migrates to, only versions the file names (or its pathway's own)."""
    named = [(("scenarios", index, "version"), scenario.version)]
    named += [(("scenarios", index, "actions", number, "migrate_to"), action.migrate_to)
              for number, action in enumerate(scenario.actions)]
    known = ", ".join(map(str, sorted(versions)))
    return [(where, f"version {number} is not among the pathway's versions ({known}); add its file to `versions`")
            for where, number in named if number is not None and number not in versions]


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
                             f"answered at the very moment {what}: say which comes first by answering "
                             "a minute earlier or later"))
    return problems



def _call_script(pathway: Pathway, scenario: Scenario, index: int,
                 instruments: dict) -> tuple[CallScript, list[tuple[Location, str]]]:
    """The call outcomes as tools.driver reads them, each naming a call step of the pathway, with values
    its form takes; and the same for the staff actions that record call outcomes."""
    where: Location = ("scenarios", index, "calls")
    script, problems = CallScript(), []
    if scenario.calls is not None:
        try:
            script = parse_call_script(scenario.calls)
        except ValueError as error:
            return script, [(where, str(error))]
    recorded = [((*where, step_id, number), step_id, call.values) for step_id, calls in script.by_step.items()
                for number, call in enumerate(calls)]
    recorded += [(("scenarios", index, "actions", number, "call_outcome"), action.call_outcome.step,
                  action.call_outcome.values) for number, action in enumerate(scenario.actions) if action.call_outcome]
    steps = {step.id: step for step in pathway.steps if step.kind == "call"}
    named = [((*where, step_id), step_id) for step_id in script.by_step]
    named += [(("scenarios", index, "actions", number, "call_outcome", "step"), action.call_outcome.step)
              for number, action in enumerate(scenario.actions) if action.call_outcome]
    problems += [(place, f"'{step_id}' is not a call step of {pathway.id}; its call steps: {', '.join(steps) or 'none'}")
                 for place, step_id in named if step_id not in steps]
    for place, step_id, values in recorded:
        form = steps[step_id].instrument if step_id in steps else None
        if values and step_id in steps and form is None:
            problems.append(((*place, "values"), f"{step_id} has no form (instrument) to record values on"))
        elif values and form in instruments:
            problems += [((*place, "values"), f"{item}: {message}")
                         for item, message in instruments[form].validate_answers(values).items()]
    return script, problems
