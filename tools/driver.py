"""Play one enrollment through virtual time: what the patient answers, what staff do, and when.

Used by `carepath simulate` and by `carepath test`. The time-skipping server jumps straight to the
end of a workflow that waits for a person (an open call task), so virtual time is never left to run
by itself: the driver asks the workflow when it next wakes (`Timeline.next_due`), moves the clock to
that moment or to the next scripted answer or staff action, whichever comes first, and lets the
workflow finish everything due at that instant before people act. An answer or a call outcome given
at the very minute a reminder or a retry falls due therefore always finds the state a person at a
screen would see. When the workflow waits only for people and the script has nothing left for them
to do, the driver stops and says what the pathway waits for.

Every way a run can go wrong ends in a `PlayFailed` whose message is one line naming the step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from language.events import EventInvalid, values_for_rules
from language.model import Pathway
from language.timing import parse_duration
from services.calls import CallValuesInvalid, read_call_values
from services.enrollments import Enrolled
from services.responses import Accepted, QuestionnaireClosed, submit_response
from tools.deeds import (
    STAFF_ID,
    Cancel,
    Migrate,
    MoveAnchor,
    Pause,
    Planned,
    RecordAttendance,
    RecordCallOutcome,
    Resume,
    SendEvent,
    StaffDeed,
)
from workflows.contracts import (
    AttendanceReport,
    CallOutcome,
    EnrollmentEvent,
    MigrationRequest,
    StaffAction,
    Timeline,
    TimelineEntry,
    escalation_workflow_id,
)
from workflows.escalation import EscalationWorkflow
from workflows.pathway import PathwayWorkflow

if TYPE_CHECKING:  # tools.simulation builds the stack and plays through this module
    from tools.simulation import Stack

REAL_TIME_LIMIT = 60.0
"""Seconds of real time the workflow may take to act on what is due; it normally takes milliseconds."""

PAUSE_NOTICED_AFTER = 0.5
"""Seconds of real time after which a workflow that does not act on what is due is looked at: paused
by an escalation (it waits for staff), or broken (an exception in workflow code is retried forever)."""


class PlayFailed(Exception):
    """The enrollment could not be played on; the message is one line, for the author."""


# --- scripts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScriptedAnswer:
    """How the simulated patient answers one questionnaire occurrence (None: never answers)."""

    answers: dict | None
    after: timedelta = timedelta(hours=1)


AnswerScript = dict[str, list[ScriptedAnswer]]


@dataclass(frozen=True)
class ScriptedCall:
    """What staff record for one call attempt, `after` it opened."""

    outcome: Literal["reached", "not_reached"]
    values: dict = field(default_factory=dict)
    after: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class CallScript:
    """Call outcomes per call step, one per attempt in the order they open (every attempt of every
    occurrence counts); `every` answers each attempt no list covers. Attempts left out stay open."""

    by_step: dict[str, list[ScriptedCall]] = field(default_factory=dict)
    every: ScriptedCall | None = None

    def outcome_for(self, step_id: str, attempt: int) -> ScriptedCall | None:
        listed = self.by_step.get(step_id)
        if listed is not None:
            return listed[attempt - 1] if attempt <= len(listed) else None
        return self.every


def parse_answer_script(data: object) -> AnswerScript:
    """`{step_id: [ {answers: {...}, after: 2h} | "no answer", ...]}`, one entry per occurrence."""
    if not isinstance(data, dict):
        raise ValueError("the answers file must map questionnaire step ids to a list, one entry per occurrence")
    script: AnswerScript = {}
    for step_id, occurrences in data.items():
        if not isinstance(occurrences, list):
            raise ValueError(f"{step_id}: expected a list with one entry per occurrence")
        script[step_id] = []
        for number, entry in enumerate(occurrences, start=1):
            if entry in (None, "no answer"):
                script[step_id].append(ScriptedAnswer(None))
            elif isinstance(entry, dict) and isinstance(entry.get("answers"), dict):
                after = parse_duration(entry.get("after", "1h"))
                script[step_id].append(ScriptedAnswer(entry["answers"], after))
            else:
                raise ValueError(f"{step_id} occurrence {number}: expected 'no answer' or {{answers: {{...}}, after: 2h}}")
    return script


def parse_call_script(data: object) -> CallScript:
    """`reached`, `not_reached` (every attempt, an hour after it opens), or
    `{step_id: [not_reached, {outcome: reached, values: {systolic: 150}, after: 2h}, ...]}`."""
    if data in ("reached", "not_reached"):
        return CallScript(every=ScriptedCall(data))
    if not isinstance(data, dict):
        raise ValueError("expected reached, not_reached, or call step ids each with a list, one outcome per attempt")
    by_step: dict[str, list[ScriptedCall]] = {}
    for step_id, attempts in data.items():
        if not isinstance(attempts, list):
            raise ValueError(f"{step_id}: expected a list with one outcome per attempt")
        by_step[step_id] = []
        for number, entry in enumerate(attempts, start=1):
            if entry in ("reached", "not_reached"):
                by_step[step_id].append(ScriptedCall(entry))
            elif isinstance(entry, dict) and entry.get("outcome") in ("reached", "not_reached") \
                    and isinstance(entry.get("values", {}), dict) and not set(entry) - {"outcome", "values", "after"}:
                by_step[step_id].append(ScriptedCall(entry["outcome"], entry.get("values", {}),
                                                     parse_duration(entry.get("after", "1h"))))
            else:
                raise ValueError(f"{step_id} attempt {number}: expected reached, not_reached or "
                                 "{outcome: reached, values: {...}, after: 2h}")
    return CallScript(by_step)


@dataclass
class Script:
    answers: AnswerScript = field(default_factory=dict)
    calls: CallScript = field(default_factory=CallScript)
    actions: list[Planned] = field(default_factory=list)


# --- what a run gives back ------------------------------------------------------------------------


@dataclass(frozen=True)
class Happened:
    """Something the driver did, and what came of it."""

    moment: datetime
    kind: Literal["staff", "refused", "rule"]
    text: str


@dataclass
class Played:
    timeline: Timeline
    happened: list[Happened]
    waiting_for: list[str]  # what the enrollment still waits for staff to do ([] once it has ended)


# --- the driver -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Due:
    moment: datetime
    key: str  # each scripted answer, call outcome and action happens once
    perform: Callable[[], Awaitable[None]]


class _Player:
    def __init__(self, environment: WorkflowEnvironment, stack: Stack, pathway: Pathway, enrolled: Enrolled,
                 script: Script, show_time: Callable[[datetime], str]):
        self.environment, self.stack, self.pathway, self.enrolled = environment, stack, pathway, enrolled
        self.script = script
        self.show_time = show_time
        self.workflow = enrolled.workflow
        self.done: set[str] = set()
        self.happened: list[Happened] = []

    async def play(self) -> Played:
        while True:
            timeline, now = await self._settled()
            ended = timeline.status != "active"  # staff may still act, e.g. on an escalation that outlives it
            due = sorted((item for item in self._due(timeline) if item.key not in self.done),
                         key=lambda item: item.moment)
            first = due[0] if due else None
            # People act after whatever the workflow does within the same minute: times are written to
            # the minute, and a retry set by an update falls a few real milliseconds past its minute.
            workflow_first = timeline.next_due is not None and (
                first is None or timeline.next_due < _end_of_minute(first.moment))
            if first is not None and first.moment <= now and not workflow_first:
                self.done.add(first.key)
                await first.perform()
                continue
            if workflow_first or first is not None:
                wake = timeline.next_due if workflow_first else first.moment
                await self._watched(self.environment.sleep(wake - now), "letting time pass")
            elif ended:
                finished = await self._watched(self.workflow.result(), "finishing")
                return Played(finished, self.happened, [])
            else:
                return Played(timeline, self.happened, await self._waiting_for(timeline))

    # What the script has people do, given what the pathway has done so far.
    def _due(self, timeline: Timeline) -> list[_Due]:
        due = []
        for entry in timeline.entries:
            scripted = self.script.answers.get(entry.step_id, [])
            if entry.kind == "questionnaire" and entry.occurrence <= len(scripted):
                answer = scripted[entry.occurrence - 1]
                if answer.answers is not None:
                    due.append(_Due(entry.due + answer.after, f"answer {entry.key}",
                                    lambda entry=entry, answer=answer: self._answer(entry, answer)))
            elif entry.kind == "call" and entry.status == "open" and entry.at is not None:
                attempt = entry.attempts + sum(e.attempts for e in timeline.entries if e.kind == "call"
                                               and e.step_id == entry.step_id and e.occurrence < entry.occurrence)
                call = self.script.calls.outcome_for(entry.step_id, attempt)
                if call is not None:
                    due.append(_Due(entry.at + call.after, f"call {entry.key} attempt {entry.attempts}",
                                    lambda entry=entry, call=call: self._record_call(entry, call.outcome, call.values)))
        for number, planned in enumerate(self.script.actions):
            due.append(_Due(planned.moment, f"action {number}", lambda planned=planned: self._act(planned.deed)))
        return due

    async def _answer(self, entry: TimelineEntry, answer: ScriptedAnswer) -> None:
        now = await self._now()
        try:
            result = await self._watched(submit_response(
                self.stack.sessions, self.stack.client, self.stack.instruments, enrollment_id=self.enrolled.enrollment.id,
                step_id=entry.step_id, occurrence=entry.occurrence, answers=answer.answers, source="simulation"),
                f"answering {entry.key}")
        except QuestionnaireClosed as closed:
            self.happened.append(Happened(now, "refused", f"{entry.key}: {closed}"))
            return
        except PlayFailed:
            raise
        except Exception as error:  # e.g. answers the instrument refuses
            raise PlayFailed(f"{entry.key}: the answers were refused: {_one_line(error)}") from None
        if isinstance(result, Accepted):
            for error in result.outcome.errors:
                self.happened.append(Happened(now, "rule", f"{entry.key}: {error}"))

    async def _record_call(self, entry: TimelineEntry, outcome: str, values: dict) -> None:
        now = await self._now()
        outcome_of = f"call {entry.key} attempt {entry.attempts}: {outcome}"
        try:
            await self._watched(self.workflow.execute_update(PathwayWorkflow.record_call_outcome, CallOutcome(
                step_id=entry.step_id, occurrence=entry.occurrence, outcome=outcome, staff_id=STAFF_ID,
                values=self._on_the_form(entry, values))), "recording a call outcome")
        except WorkflowUpdateFailedError as refused:
            raise PlayFailed(f"{outcome_of} was refused: {_one_line(refused.cause or refused)}") from None
        self.happened.append(Happened(now, "staff", outcome_of))

    def _on_the_form(self, entry: TimelineEntry, values: dict) -> dict:
        """The values as the call step's form reads them, as the worklist API records them: a value the
        form does not have would never meet the rule written for it."""
        try:
            return read_call_values(self.pathway, entry.step_id, values, self.stack.instruments)
        except CallValuesInvalid as invalid:
            raise PlayFailed(f"{entry.key}: {invalid}") from None

    async def _act(self, deed: StaffDeed) -> None:
        now = await self._now()
        if isinstance(deed, Cancel | Pause | Resume | MoveAnchor):
            update, request, said = deed.update(self.show_time)
            try:
                await self._watched(self.workflow.execute_update(update, request), deed.name)
                self.happened.append(Happened(now, "staff", said))
            except WorkflowUpdateFailedError as refused:  # the workflow's own answer, e.g. already completed
                self.happened.append(Happened(now, "staff", f"{deed.name} refused: {_one_line(refused.cause or refused)}"))
            return
        if isinstance(deed, Migrate):
            await self._migrate(deed.pathway, now)
            return
        if isinstance(deed, SendEvent):  # checked and cut down to what rules compare, as the API does
            try:
                values = values_for_rules(self.pathway, deed.type, deed.values)
                await self._watched(self.workflow.execute_update(PathwayWorkflow.record_event, EnrollmentEvent(
                    event_id=f"ev_scenario_{len(self.happened)}", type=deed.type, values=values)), "sending an event")
            except (EventInvalid, WorkflowUpdateFailedError) as refused:  # a refusal is what happened
                why = _one_line(getattr(refused, "cause", None) or refused)
                self.happened.append(Happened(now, "staff", f"event {deed.type} refused: {why}"))
            return
        timeline = await self.workflow.query(PathwayWorkflow.timeline)
        if isinstance(deed, RecordCallOutcome):
            entry = next((e for e in timeline.entries if e.kind == "call" and e.step_id == deed.step_id
                          and e.status == "open"), None)
            if entry is None:
                raise PlayFailed(f"{deed.step_id}: no call attempt is open at {self.show_time(now)} "
                                 f"for the outcome {deed.outcome}")
            await self._record_call(entry, deed.outcome, deed.values)
            return
        if isinstance(deed, RecordAttendance):
            visit = next((e for e in timeline.entries if e.kind == "appointment" and e.step_id == deed.step_id
                          and e.status == "open"), None)
            if visit is None:
                raise PlayFailed(f"{deed.step_id}: no visit waits for attendance at {self.show_time(now)}")
            await self._watched(self.workflow.execute_update(PathwayWorkflow.record_attendance, AttendanceReport(
                step_id=visit.step_id, occurrence=visit.occurrence, outcome=deed.outcome, recorded_by=STAFF_ID)),
                "recording attendance")
            self.happened.append(Happened(now, "staff", f"attendance {visit.key}: {deed.outcome}"))
            return
        for state, handle in await self._escalations(timeline):
            if state.reason == deed.reason and state.status == "open":
                team = state.notified[-1].team
                await self._watched(handle.execute_update(EscalationWorkflow.acknowledge,
                                                          StaffAction(staff_id=STAFF_ID, team=team)), "acknowledging")
                self.happened.append(Happened(now, "staff",
                                              f"acknowledge {deed.reason} (tier {state.notified[-1].tier}, {team})"))
                return
        raise PlayFailed(f"acknowledge: no open escalation '{deed.reason}' at {self.show_time(now)}")

    async def _migrate(self, pathway: Pathway, now: datetime) -> None:
        self.stack.pathways.follow(pathway)
        try:
            outcome = await self._watched(self.workflow.execute_update(PathwayWorkflow.migrate, MigrationRequest(
                pathway=pathway, actor=STAFF_ID)), "migrating")
        except WorkflowUpdateFailedError as refused:
            self.happened.append(Happened(now, "staff", f"migrate to v{pathway.version} refused: "
                                                        f"{_one_line(refused.cause or refused)}"))
            return
        self.pathway = pathway  # call outcomes are read by the form of the version followed from now on
        self.happened.append(Happened(now, "staff", f"migrate to v{pathway.version}: {outcome.status}"))

    async def _now(self) -> datetime:
        return await self.environment.get_current_time()

    async def _settled(self) -> tuple[Timeline, datetime]:
        """The timeline once the workflow has done everything due up to now, so that people act on
        what they would see, never racing a reminder or a retry due at the same minute; and now."""
        started = asyncio.get_running_loop().time()
        looked = False
        while True:
            try:
                timeline = await self.workflow.query(PathwayWorkflow.timeline)
            except Exception as error:
                raise PlayFailed(await self._failure() or f"the workflow cannot be asked for its timeline: "
                                                          f"{_one_line(error)}") from None
            now = await self._now()
            if (timeline.next_due or now) > now or (timeline.next_due is None and timeline.status != "active"):
                return timeline, now
            # Nothing left to wake for, or something due now: either people hold the pathway, or the
            # workflow is still at work (between taking an item off its agenda and scheduling what follows).
            if await self._held_by_people(timeline):
                return timeline.model_copy(update={"next_due": None}), now
            waited = asyncio.get_running_loop().time() - started
            if waited >= PAUSE_NOTICED_AFTER and not looked:
                looked = True
                if failure := await self._failure():
                    raise PlayFailed(failure)
            if waited >= REAL_TIME_LIMIT:
                raise PlayFailed(f"the workflow neither acted on what was due at {self.show_time(now)} "
                                 f"nor said what it waits for, within {REAL_TIME_LIMIT:g} s")
            await asyncio.sleep(0.002)

    async def _held_by_people(self, timeline: Timeline) -> bool:
        if timeline.next_due is None and (timeline.paused or any(e.kind == "call" and e.status == "open"
                                                                  for e in timeline.entries)):
            return True
        pauses = any(policy.pause_pathway for policy in self.pathway.escalation_policies.values())
        return pauses and any(state.status == "open" for state, _ in await self._escalations(timeline))

    async def _escalations(self, timeline: Timeline) -> list:
        found = []
        for event in timeline.events:
            if event.kind == "escalation" and event.escalation_id:
                handle = self.stack.client.get_workflow_handle_for(
                    EscalationWorkflow.run, escalation_workflow_id(event.escalation_id))
                found.append((await handle.query(EscalationWorkflow.state), handle))
        return found

    async def _waiting_for(self, timeline: Timeline) -> list[str]:
        calls = [f"call {e.step_id} #{e.occurrence}" + (f" attempt {e.attempts}" if e.attempts > 1 else "")
                 + f", opened {self.show_time(e.at)}"
                 for e in timeline.entries if e.kind == "call" and e.status == "open" and e.at is not None]
        escalations = [f"escalation '{state.reason}', told {state.notified[-1].team} {self.show_time(state.notified[-1].at)}"
                       for state, _ in await self._escalations(timeline) if state.status == "open" and state.notified]
        paused = [f"resume, paused {self.show_time(timeline.paused.since)}"] if timeline.paused else []
        return calls or escalations or paused

    async def _watched(self, awaitable: Awaitable[Any], doing: str) -> Any:
        """Await something that lets virtual time run, failing fast if the workflow's code fails
        (Temporal retries a failing workflow task forever, silently)."""
        task = asyncio.ensure_future(awaitable)
        waited = 0.0
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=1.0)
                if task.done():
                    break
                waited += 1.0
                if failure := await self._failure():
                    raise PlayFailed(failure)
                if waited >= REAL_TIME_LIMIT:
                    raise PlayFailed(f"{doing}: nothing happened for {REAL_TIME_LIMIT:g} s")
            return task.result()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _failure(self) -> str | None:
        """Why the workflow's code failed, if it did."""
        try:
            async for event in self.workflow.fetch_history_events():
                if event.HasField("workflow_task_failed_event_attributes"):
                    # Encrypted with the payloads (services/payload_codec.py): decoded, it reads as raised.
                    failure = await self.stack.client.data_converter.decode_failure(
                        event.workflow_task_failed_event_attributes.failure)
                    message = failure.message or "workflow task failed"
                    return f"the pathway's workflow failed: {message}"
        except Exception:
            return None
        return None


async def play(environment: WorkflowEnvironment, stack: Stack, pathway: Pathway, enrolled: Enrolled,
               script: Script, show_time: Callable[[datetime], str]) -> Played:
    """Play the enrollment until it ends or waits only for staff the script does not supply.

    `show_time` writes a moment the way the caller's reader reads times (failures and waits name them).
    Raises PlayFailed; the caller should `abandon` the enrollment then."""
    try:
        return await _Player(environment, stack, pathway, enrolled, script, show_time).play()
    except PlayFailed:
        raise
    except Exception as error:  # the server or the SDK gave up: say why in one line, never a traceback
        raise PlayFailed(f"could not run: {_one_line(error)}") from None


async def abandon(enrolled: Enrolled) -> None:
    """End a workflow that cannot go on (or waits for staff), so it does not hold up what runs next."""
    try:
        await enrolled.workflow.terminate(reason="simulation over")
    except Exception:
        pass  # already closed


def _end_of_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _one_line(error: BaseException) -> str:
    """An error and what caused it, in one line: `Workflow execution failed: Workflow timed out`."""
    parts, seen = [], set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(str(getattr(current, "message", None) or current) or type(current).__name__)
        current = getattr(current, "cause", None) or current.__cause__
    return " ".join(": ".join(parts).split())
