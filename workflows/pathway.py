"""PathwayWorkflow: one durable run per enrollment, from the first touchpoint to the last.

Deterministic code only. The pathway snapshot arrives in the input, so an enrollment keeps the
version it started with; the plan is recompiled from it on every replay, identically.

The run is an agenda: a list of things due at given times (send a message, open a questionnaire,
remind, expire, act on a rule). One loop sleeps on a durable timer until the earliest is due and
performs it; updates (answers, cancellation) change the agenda and wake the loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import count

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from language.expressions import evaluate
    from language.model import CRISIS_POLICY_NAME, Actions, Escalate, MessageStep, QuestionnaireStep, crisis_policy
    from language.plan import compile_plan, questionnaire_window
    from workflows.contracts import (
        DELIVER_MESSAGE,
        EXPIRE_QUESTIONNAIRE,
        OPEN_CALL_TASK,
        OPEN_QUESTIONNAIRE,
        RECORD_ENROLLMENT_STATUS,
        SCREEN_FREE_TEXT,
        CallOutcome,
        CallTask,
        CancelRequest,
        DeliveryReceipt,
        EnrollmentRun,
        EnrollmentStatusChange,
        EscalationStart,
        FormLink,
        MessageDelivery,
        QuestionnaireOccurrence,
        ResponseSubmission,
        ResponseSummary,
        RuleOutcome,
        Timeline,
        TimelineEntry,
        TimelineEvent,
        escalation_workflow_id,
    )
    from workflows.escalation import EscalationWorkflow

# A delivery that keeps failing for about an hour is recorded as failed rather than blocking the
# rest of the pathway; each attempt is bounded so a hung SMTP server cannot hold an attempt forever.
DELIVERY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                             maximum_interval=timedelta(minutes=10), maximum_attempts=10)
DELIVERY_ATTEMPT_TIMEOUT = timedelta(seconds=30)
BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
# Enrolling takes a moment after the anchor is chosen: a touchpoint due at "anchor + 0s" still goes.
ENROLLMENT_GRACE = timedelta(minutes=15)


@dataclass(order=True)
class _Due:
    """One thing on the agenda. Ordered by time, then by when it was added."""

    due: datetime
    sequence: int
    action: str = field(compare=False)
    entry: TimelineEntry = field(compare=False)
    detail: object = field(default=None, compare=False)
    # What a rule decided (an escalation, advice to the patient) happens even if the same rule,
    # or staff, end the pathway a moment later.
    outlives_end: bool = field(default=False, compare=False)


_FIRST_ACTION = {"message": "message", "questionnaire": "open", "call": "call"}
CRISIS_REASON = "Crisis language or a self-harm answer: assess suicide risk now"


@workflow.defn
class PathwayWorkflow:
    @workflow.init
    def __init__(self, run: EnrollmentRun) -> None:
        self._run = run
        self._entries = [
            TimelineEntry(step_id=t.step_id, occurrence=t.occurrence, kind=t.kind, due=t.due)
            for t in compile_plan(run.pathway, run.anchor, run.timezone)
        ]
        self._agenda: list[_Due] = []
        self._sequence = count()
        self._agenda_changes = 0
        self._tags: list[str] = []
        self._escalations = 0
        self._crisis_routed: set[str] = set()
        self._events: list[TimelineEvent] = []
        self._cancel_reason: str | None = None
        self._stop_reason: str | None = None
        self._in_flight: str | None = None
        self._finished = False

    @workflow.run
    async def run(self, run: EnrollmentRun) -> Timeline:
        self._skip_touchpoints_due_before_enrollment()
        for entry in self._entries:
            if entry.status == "planned":
                self._schedule(entry.due, _FIRST_ACTION[entry.kind], entry)
        while self._agenda or self._calls_waiting():
            if not self._agenda:
                # Only a phone task is left: the pathway lasts until staff record its outcome.
                await workflow.wait_condition(lambda: bool(self._agenda) or not self._calls_waiting())
                continue
            next_item = self._agenda[0]
            if await self._sleep_until(next_item.due) and self._agenda and self._agenda[0] is next_item:
                self._agenda.pop(0)
                await self._perform(next_item)
        self._close_remaining()
        self._finished = True
        await workflow.execute_activity(
            RECORD_ENROLLMENT_STATUS,
            EnrollmentStatusChange(enrollment_id=run.enrollment_id, status=self._status(), reason=self._ended_by()),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.timeline()

    @workflow.query
    def timeline(self) -> Timeline:
        return Timeline(enrollment_id=self._run.enrollment_id, status=self._status(), cancel_reason=self._ended_by(),
                        next_due=self._agenda[0].due if self._agenda else None,
                        tags=self._tags, entries=self._entries, events=self._events)

    @workflow.update
    def cancel(self, request: CancelRequest) -> Timeline:
        """Stop every touchpoint not yet started; one already being delivered completes."""
        self._cancel_reason = request.reason
        self._close_remaining()
        return self.timeline()

    @cancel.validator
    def _refuse_cancel_when_over(self, request: CancelRequest) -> None:
        if not request.reason.strip():
            raise ValueError("a cancellation needs a reason")
        if self._ended_by() is not None:
            raise ValueError(f"the enrollment is already {self._status()}")
        if self._finished:
            raise ValueError("the enrollment has already completed")

    @workflow.update
    async def submit_response(self, submission: ResponseSubmission) -> RuleOutcome:
        """Record a questionnaire response, act on it by the step's rules, and by the safety net."""
        entry = self._entry(submission.step_id, submission.occurrence)
        step = self._run.pathway.step(entry.step_id)
        entry.status, entry.at = "answered", workflow.now()
        entry.response = ResponseSummary(**submission.model_dump(include=set(ResponseSummary.model_fields)))
        entry.outcome = self._apply_rules(step.on, entry, self._rule_names(entry.response))
        crisis_words = submission.has_free_text and await workflow.execute_activity(
            SCREEN_FREE_TEXT, submission.response_id, result_type=bool,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT, retry_policy=DELIVERY_RETRY)
        if crisis_words or "self_harm" in submission.flags:
            self._crisis(entry, "crisis language in free text" if crisis_words else "self-harm flag", entry.outcome)
        return entry.outcome

    @workflow.update
    def record_call_outcome(self, outcome: CallOutcome) -> RuleOutcome:
        """Staff reached the patient (rules on what they measured) or did not (try again, then escalate)."""
        entry = self._entry(outcome.step_id, outcome.occurrence)
        step = self._run.pathway.step(entry.step_id)
        entry.at = workflow.now()
        if outcome.outcome == "reached":
            entry.status = "reached"
            entry.outcome = self._apply_rules(step.on, entry, self._value_names(outcome.values))
        elif entry.attempts < step.retry.times:
            entry.status = "planned"  # `attempts` says how many were made; `detail` keeps who opened it
            self._schedule(workflow.now() + step.retry.every, "call", entry)
            entry.outcome = RuleOutcome()
        else:
            entry.status = "not_reached"
            entry.outcome = RuleOutcome()
            if step.on_not_reached:
                self._act(step.on_not_reached, entry, f"not reached in {entry.attempts} attempts", entry.outcome)
        return entry.outcome

    @record_call_outcome.validator
    def _accept_outcomes_of_open_calls(self, outcome: CallOutcome) -> None:
        entry = next((e for e in self._entries if e.step_id == outcome.step_id
                      and e.occurrence == outcome.occurrence and e.kind == "call"), None)
        if entry is None:
            raise ValueError(f"no call {outcome.step_id} #{outcome.occurrence} in this enrollment")
        if entry.status != "open":
            raise ValueError(f"call {outcome.step_id} #{outcome.occurrence} is {entry.status}, not waiting for an outcome")

    def _apply_rules(self, rules, entry: TimelineEntry, names: dict) -> RuleOutcome:
        outcome = RuleOutcome()
        for index, rule in enumerate(rules):
            try:
                matched = bool(evaluate(rule.when, names))
            except Exception as error:  # a rule over an unanswered optional item cannot decide
                outcome.errors.append(f"rule {index + 1} ({rule.when}) not evaluated: {error}")
                continue
            if matched:
                self._act(rule, entry, f"rule {index + 1}: {rule.when}", outcome)
        return outcome

    def _crisis(self, entry: TimelineEntry, trigger: str, outcome: RuleOutcome) -> None:
        """The safety net every pathway has: one urgent escalation on the crisis route per response."""
        if entry.key in self._crisis_routed:
            return  # the author's own rule already sent it down the crisis route
        self._act(Actions(escalate=Escalate(reason=CRISIS_REASON, policy=CRISIS_POLICY_NAME, priority="urgent")),
                  entry, trigger, outcome)

    @submit_response.validator
    def _accept_only_open_occurrences(self, submission: ResponseSubmission) -> None:
        entry = next((e for e in self._entries if e.step_id == submission.step_id
                      and e.occurrence == submission.occurrence and e.kind == "questionnaire"), None)
        if entry is None:
            raise ValueError(f"no questionnaire {submission.step_id} #{submission.occurrence} in this enrollment")
        if entry.status != "open":
            state = {"planned": "is not open yet", "answered": "has already been answered",
                     "expired": "has expired"}.get(entry.status, f"is {entry.status}")
            raise ValueError(f"questionnaire {submission.step_id} #{submission.occurrence} {state}")

    def _status(self) -> str:
        if self._cancel_reason is not None:
            return "cancelled"
        if self._stop_reason is not None:
            return "stopped"
        return "completed" if self._finished else "active"

    def _ended_by(self) -> str | None:
        return self._cancel_reason or self._stop_reason

    def _entry(self, step_id: str, occurrence: int) -> TimelineEntry:
        return next(e for e in self._entries if e.step_id == step_id and e.occurrence == occurrence)

    def _schedule(self, due: datetime, action: str, entry: TimelineEntry, detail: object = None,
                  outlives_end: bool = False) -> None:
        self._agenda.append(_Due(due, next(self._sequence), action, entry, detail, outlives_end))
        self._agenda.sort()
        self._agenda_changes += 1

    def _calls_waiting(self) -> bool:
        return any(entry.kind == "call" and entry.status == "open" for entry in self._entries)

    def _skip_touchpoints_due_before_enrollment(self) -> None:
        """A patient enrolled on day 10 must not receive days 1-9 in one burst.

        Only touchpoints already past due when the run starts are skipped; one delayed later (a
        worker outage) is still sent late, because a late reminder beats a lost one.
        """
        started = workflow.info().workflow_start_time
        for entry in self._entries:
            if entry.due < started - ENROLLMENT_GRACE:
                entry.status, entry.at = "skipped", started
                entry.detail = "due before the enrollment was made"

    def _close_remaining(self) -> None:
        """Once the enrollment is cancelled or stopped, nothing not yet started will happen."""
        reason = self._ended_by()
        if reason is None:
            return
        self._agenda = [item for item in self._agenda if item.outlives_end]
        still_due = {item.entry.key for item in self._agenda if item.action == "message"}
        for entry in self._entries:
            if entry.status in ("planned", "open") and entry.key != self._in_flight and entry.key not in still_due:
                entry.status, entry.at, entry.detail = "cancelled", workflow.now(), reason
        self._agenda_changes += 1

    async def _sleep_until(self, due: datetime) -> bool:
        """Wait on a durable timer until `due`; False if the agenda changed first (look again)."""
        delay = due - workflow.now()
        if delay <= timedelta(0):
            return True
        changes = self._agenda_changes
        try:
            await workflow.wait_condition(lambda: self._agenda_changes != changes, timeout=delay)
            return False
        except asyncio.TimeoutError:
            return True

    async def _perform(self, item: _Due) -> None:
        entry = item.entry
        if item.action == "message":
            await self._deliver(entry, self._run.pathway.step(entry.step_id))
        elif item.action == "open":
            await self._open_questionnaire(entry)
        elif item.action == "remind" and entry.status == "open":
            step = self._run.pathway.step(entry.step_id)
            entry.reminders_sent += 1
            await self._send(entry, step, purpose=f"reminder-{entry.reminders_sent}", due=item.due,
                             templates=step.reminder_template or step.template, form=self._form(entry, step))
        elif item.action == "expire" and entry.status == "open":
            await self._expire_questionnaire(entry)
        elif item.action == "escalate":
            await self._escalate(entry, *item.detail)
        elif item.action == "call":
            await self._open_call(entry)

    async def _deliver(self, entry: TimelineEntry, step: MessageStep) -> None:
        if await self._send(entry, step, purpose="scheduled", templates=step.template):
            entry.status = "sent"
        else:
            entry.status = "failed"

    async def _send(self, entry: TimelineEntry, step, *, purpose: str, templates, form: FormLink | None = None,
                    due: datetime | None = None) -> bool:
        """Deliver one message; on final failure record why on the entry and go on with the pathway."""
        self._in_flight = entry.key
        try:
            receipt = await workflow.execute_activity(
                DELIVER_MESSAGE,
                MessageDelivery(
                    enrollment_id=self._run.enrollment_id, pathway_id=self._run.pathway.id,
                    pathway_title=self._run.pathway.title, step_id=step.id, occurrence=entry.occurrence,
                    purpose=purpose, channel=step.channel, due=due or entry.due, templates=templates, form=form,
                ),
                result_type=DeliveryReceipt,
                start_to_close_timeout=DELIVERY_ATTEMPT_TIMEOUT,
                retry_policy=DELIVERY_RETRY,
            )
            entry.at = entry.at or workflow.now()
            if receipt.duplicate:
                entry.detail = "already sent by an earlier attempt; not sent again"
            return True
        except ActivityError as error:
            entry.at = entry.at or workflow.now()
            entry.detail = f"{purpose}: {error.cause.message if error.cause else error}"
            return False
        finally:
            self._in_flight = None

    def _form(self, entry: TimelineEntry, step: QuestionnaireStep) -> FormLink:
        return FormLink(instrument_id=step.instrument, expires=entry.closes)

    async def _open_questionnaire(self, entry: TimelineEntry) -> None:
        step = self._run.pathway.step(entry.step_id)
        # Reminders and expiry count from the scheduled opening, or from a late one (after an
        # outage) in whole seconds: timings authors and tests can state exactly.
        opened = max(entry.due, workflow.now().replace(microsecond=0))
        reminders, expires = questionnaire_window(self._run.pathway, step, opened, self._run.timezone)
        entry.status, entry.at, entry.closes, entry.reminders = "open", opened, expires, reminders
        await workflow.execute_activity(
            OPEN_QUESTIONNAIRE,
            QuestionnaireOccurrence(enrollment_id=self._run.enrollment_id, step_id=step.id,
                                    occurrence=entry.occurrence, instrument_id=step.instrument,
                                    opens=opened, expires=expires),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT, retry_policy=DELIVERY_RETRY,
        )
        for due in reminders:
            self._schedule(due, "remind", entry)
        self._schedule(expires, "expire", entry)
        await self._send(entry, step, purpose="invitation", templates=step.template, form=self._form(entry, step))

    async def _expire_questionnaire(self, entry: TimelineEntry) -> None:
        step = self._run.pathway.step(entry.step_id)
        entry.status, entry.at = "expired", workflow.now()
        await workflow.execute_activity(
            EXPIRE_QUESTIONNAIRE,
            QuestionnaireOccurrence(enrollment_id=self._run.enrollment_id, step_id=step.id,
                                    occurrence=entry.occurrence, instrument_id=step.instrument,
                                    opens=entry.due, expires=entry.closes),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT, retry_policy=DELIVERY_RETRY,
        )
        if step.on_expire:
            entry.outcome = RuleOutcome()
            self._act(step.on_expire, entry, "no answer before expiry", entry.outcome)

    def _act(self, actions: Actions, entry: TimelineEntry, trigger: str, outcome: RuleOutcome) -> None:
        """Apply a rule's actions: tags and stop now, sends and escalations on the agenda right away."""
        now = workflow.now()
        for tag in actions.tag:
            if tag not in self._tags:
                self._tags.append(tag)
                self._events.append(TimelineEvent(at=now, kind="tag", detail=f"{tag} ({entry.key}, {trigger})"))
            outcome.tags.append(tag)
        for step_id in actions.send:
            sent = TimelineEntry(step_id=step_id, kind="message", due=now,
                                 occurrence=1 + sum(1 for e in self._entries if e.step_id == step_id),
                                 detail=f"sent by {entry.key}, {trigger}")
            self._entries.append(sent)
            self._schedule(now, "message", sent, outlives_end=True)
            outcome.sent.append(step_id)
        for step_id in actions.call:
            call = TimelineEntry(step_id=step_id, kind="call", due=now,
                                 occurrence=1 + sum(1 for e in self._entries if e.step_id == step_id),
                                 detail=f"opened by {entry.key}, {trigger}")
            self._entries.append(call)
            self._schedule(now, "call", call)
            outcome.calls.append(step_id)
        if actions.escalate:
            if actions.escalate.policy == CRISIS_POLICY_NAME:
                self._crisis_routed.add(entry.key)
            self._schedule(now, "escalate", entry, (trigger, actions.escalate), outlives_end=True)
            outcome.escalations.append(actions.escalate.reason)
        if actions.stop and self._ended_by() is None:
            self._stop_reason = f"stopped by {entry.key}, {trigger}"
            self._events.append(TimelineEvent(at=now, kind="stop", detail=self._stop_reason))
            outcome.stopped = True
            self._close_remaining()

    async def _escalate(self, entry: TimelineEntry, trigger: str, escalate: Escalate) -> None:
        """Start the escalation's own workflow; it outlives this one until a person resolves it."""
        pathway = self._run.pathway
        policy = (crisis_policy(pathway) if escalate.policy == CRISIS_POLICY_NAME
                  else pathway.escalation_policies[escalate.policy])
        self._escalations += 1
        escalation_id = f"{self._run.enrollment_id}-{self._escalations}"
        priority = escalate.priority or policy.priority
        child = await workflow.start_child_workflow(
            EscalationWorkflow.run,
            EscalationStart(escalation_id=escalation_id, enrollment_id=self._run.enrollment_id,
                            step_id=entry.step_id, occurrence=entry.occurrence, trigger=trigger,
                            reason=escalate.reason, priority=priority, policy_name=escalate.policy, policy=policy,
                            response_id=entry.response.response_id if entry.response else None),
            id=escalation_workflow_id(escalation_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        self._events.append(TimelineEvent(at=workflow.now(), kind="escalation", escalation_id=escalation_id,
                                          detail=f"{priority}: {escalate.reason} ({entry.key}, {trigger})"))
        if policy.pause_pathway:
            await child  # every other step waits until a person resolves it

    async def _open_call(self, entry: TimelineEntry) -> None:
        step = self._run.pathway.step(entry.step_id)
        entry.attempts += 1
        entry.status, entry.at = "open", workflow.now()
        await workflow.execute_activity(
            OPEN_CALL_TASK,
            CallTask(enrollment_id=self._run.enrollment_id, step_id=step.id, occurrence=entry.occurrence,
                     attempt=entry.attempts, team=step.team, due=workflow.now(), scripts=step.script),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT, retry_policy=DELIVERY_RETRY,
        )

    def _value_names(self, values: dict) -> dict:
        return {**self._parameters(), **values, "tags": list(self._tags)}

    def _parameters(self) -> dict:
        return {name: parameter.value for name, parameter in self._run.pathway.parameters.items()}

    def _rule_names(self, response: ResponseSummary) -> dict:
        return {**self._parameters(), **response.items, "score": response.score, "band": response.band, "flags": list(response.flags),
                "tags": list(self._tags)}
