"""PathwayWorkflow: one durable run per enrollment, from the first touchpoint to the last.

Deterministic code only. The pathway snapshot arrives in the input, so an enrollment keeps the
version it started with; the plan is recompiled from it on every replay, identically.

The run is an agenda (workflows/agenda.py): typed things due at given times (send a message, open
a questionnaire, remind, expire, open a call, start an escalation). One loop sleeps on a durable
timer until the earliest is due and performs it; updates (answers, call outcomes, cancellation)
change the agenda and wake the loop. What a response or call outcome triggers is decided by the
pure functions of language/rules.py; this workflow applies the decision.

A long pathway (a year of weekly checks) continues as new when its history grows long, handing
its timeline and agenda to the next run in the input (`EnrollmentRun.carried`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from language.migration import plan_migration
    from language.model import Actions, Escalate, Pathway
    from language.plan import questionnaire_window
    from language.rules import (
        Decision,
        decide,
        measured_names,
        response_names,
        safety_net,
    )
    from workflows import effects, reach, retries
    from workflows.agenda import (
        Agenda,
        AgendaItem,
        Expire,
        OpenCall,
        OpenQuestionnaire,
        Remind,
        SendMessage,
        StartEscalation,
    )
    from workflows.appointments import AppointmentItem, AppointmentSteps
    from workflows.carried import carried_items, restored
    from workflows.contracts import (
        EXPIRE_QUESTIONNAIRE,
        OPEN_CALL_TASK,
        OPEN_QUESTIONNAIRE,
        RECORD_ENROLLMENT_STATUS,
        CallOutcome,
        CancelRequest,
        CarriedState,
        EnrollmentRun,
        EnrollmentStatusChange,
        MigrationOutcome,
        MigrationRequest,
        ResponseSubmission,
        ResponseSummary,
        RollbackRequest,
        RuleOutcome,
        Timeline,
        TimelineEntry,
        TimelineEvent,
        escalation_workflow_id,
    )
    from workflows.deliveries import Deliveries
    from workflows.escalation import EscalationWorkflow
    from workflows.events import EventHandling
    from workflows.following import FollowingSteps
    from workflows.lifecycle import Lifecycle
    from workflows.migration import (
        can_roll_back,
        migrated,
        migration_event,
        rolled_back,
    )
    from workflows.occasions import OccasionSteps
    from workflows.opening import planned_entries, skip_due_before_enrollment
    from workflows.payloads import (
        call_task,
        escalation_start,
        form_link,
        questionnaire_occurrence,
    )

# Well below Temporal's limits (and the point where replaying a run gets slow); one turn of the
# agenda adds a few dozen events at most.
HISTORY_EVENTS_PER_RUN = 1000


@workflow.defn
class PathwayWorkflow(Lifecycle, EventHandling, FollowingSteps, AppointmentSteps, OccasionSteps, reach.Reaching):
    @workflow.init
    def __init__(self, run: EnrollmentRun) -> None:
        self._run = run
        carried = run.carried or CarriedState(entries=planned_entries(run), agenda=[], tags=[], events=[],
                                              escalations=0)
        self._entries = carried.entries
        self._agenda = Agenda()
        for item in carried.agenda:
            self._agenda.add(restored(item, self._entries))
        self._restore_lifecycle(carried)
        self._tags = carried.tags
        self._escalations = carried.escalations
        self._events = carried.events
        self._cancel_reason = carried.cancel_reason
        self._stop_reason = carried.stop_reason
        self._migrations = carried.migrations
        self._performing: AgendaItem | None = None
        self._in_flight = Deliveries()
        self._opening_call: str | None = None
        self._finished = False

    @workflow.run
    async def run(self, run: EnrollmentRun) -> Timeline:
        if run.carried is None:
            await self._plan_occasions()
            skip_due_before_enrollment(self._entries, workflow.info().workflow_start_time)
            for entry in self._entries:
                if entry.status == "planned":
                    self._begin(entry)
        while self._agenda or self._must_wait():
            # Between two turns nothing is in flight; an update still running (an outcome waiting for
            # its call to open) needs this run's loop, so the handover waits for a later turn.
            if self._history_is_long() and workflow.all_handlers_finished() and not self._in_flight:
                workflow.continue_as_new(self._run.model_copy(update={"carried": self._carried()}))
            if not self._agenda:
                # Only a phone task, a delivery a step follows or that may open the reach call, or what waits
                # for the end of a pause is left: the pathway lasts until then.
                await workflow.wait_condition(lambda: bool(self._agenda) or not self._must_wait())
                continue
            next_item = self._agenda.first()
            if await self._sleep_until(next_item.due) and self._agenda.first() is next_item:
                self._agenda.remove(next_item)
                self._performing = next_item
                try:
                    await self._perform(next_item)
                finally:
                    self._performing = None
        await workflow.wait_condition(lambda: not self._in_flight or self._ended_by() is not None)
        self._close_remaining()
        self._finished = True
        await workflow.execute_activity(
            RECORD_ENROLLMENT_STATUS,
            EnrollmentStatusChange(enrollment_id=run.enrollment_id, status=self._status(), reason=self._ended_by()),
            start_to_close_timeout=retries.BOOKKEEPING_TIMEOUT,
        )
        await workflow.wait_condition(lambda: not self._in_flight and workflow.all_handlers_finished())
        self._close_remaining()  # what deliveries still under way held open
        return self.timeline()

    @workflow.query
    def timeline(self) -> Timeline:
        next_item = self._agenda.first()
        return Timeline(enrollment_id=self._run.enrollment_id, status=self._status(), cancel_reason=self._ended_by(),
                        next_due=next_item.due if next_item else None,
                        tags=self._tags, entries=self._entries, events=self._events,
                        pathway_version=self._run.pathway.version,
                        paused=self._pause if self._ended_by() is None else None)  # an ended one is not paused

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
        entry = self._entry(submission.step_id, submission.occurrence, "questionnaire")
        rules = self.rules_pathway(entry.key)
        step = rules.step(entry.step_id)
        self._reach(entry, "answered", at=workflow.now())
        entry.response = response = ResponseSummary(**submission.model_dump(include=set(ResponseSummary.model_fields)))
        decision = decide(step.on, response_names(rules.parameters, score=response.score,
                                                  band=response.band, flags=response.flags, items=response.items,
                                                  tags=self._tags))
        entry.outcome = self._apply(decision, entry, RuleOutcome())
        crisis_words = submission.has_free_text and await effects.screen(submission.response_id, self._events)
        self._apply(safety_net(decision, crisis_words=crisis_words, flags=submission.flags), entry, entry.outcome)
        return entry.outcome

    @workflow.update
    async def record_call_outcome(self, outcome: CallOutcome) -> RuleOutcome:
        """Staff reached the patient (rules on what they measured) or did not (try again, then escalate)."""
        entry = self._entry(outcome.step_id, outcome.occurrence, "call")
        step = self.rules_pathway(entry.key).step(entry.step_id)
        if entry.status == "planned" or self._opening_call == entry.key:
            # Recorded as its attempt falls due (the validator let it through) or while its task is
            # being created: it is that attempt's outcome, so it waits until the task is on the worklist.
            await workflow.wait_condition(lambda: entry.status != "planned" and self._opening_call != entry.key)
            if entry.status != "open":  # the enrollment ended, or another outcome came first
                raise ApplicationError(f"call {outcome.step_id} #{outcome.occurrence} is {entry.status}, "
                                       "not waiting for an outcome", non_retryable=True)
        entry.at = workflow.now()
        entry.outcome = RuleOutcome()
        if outcome.outcome == "reached":
            self._reach(entry, "reached")
            names = measured_names(self.rules_pathway(entry.key).parameters, outcome.values, self._tags)
            self._apply(decide(step.on, names), entry, entry.outcome)
        elif entry.attempts < step.retry.times:
            entry.status = "planned"  # `attempts` says how many were made; `detail` keeps who opened it
            self._agenda.add(OpenCall(workflow.now() + step.retry.every, entry))
        else:
            self._reach(entry, "not_reached")
            if step.on_not_reached:
                trigger = f"not reached in {entry.attempts} attempts"
                self._apply(Decision.always(step.on_not_reached, trigger), entry, entry.outcome)
        return entry.outcome

    @record_call_outcome.validator
    def _accept_outcomes_of_open_calls(self, outcome: CallOutcome) -> None:
        call = f"call {outcome.step_id} #{outcome.occurrence}"
        entry = self._entry(outcome.step_id, outcome.occurrence, "call")
        if entry is None:
            raise ValueError(f"no {call} in this enrollment")
        next_attempt = next((item for item in self._agenda if isinstance(item, OpenCall) and item.entry is entry), None)
        if entry.status == "open" or (next_attempt is not None and next_attempt.due <= workflow.now()):
            return
        if next_attempt is not None:
            raise ValueError(f"{call} is not open: attempt {entry.attempts + 1} opens at "
                             f"{next_attempt.due.astimezone(UTC):%Y-%m-%d %H:%M} UTC, and takes an outcome from then")
        raise ValueError(f"{call} is {entry.status}, not waiting for an outcome")

    @submit_response.validator
    def _accept_only_open_occurrences(self, submission: ResponseSubmission) -> None:
        entry = self._entry(submission.step_id, submission.occurrence, "questionnaire")
        if entry is None:
            raise ValueError(f"no questionnaire {submission.step_id} #{submission.occurrence} in this enrollment")
        # An answer stored before expiry and delivered after it (the outbox, after an outage) still counts.
        in_time = entry.status == "expired" and submission.received_at and submission.received_at < entry.closes
        if entry.status != "open" and not in_time:
            state = {"planned": "is not open yet", "answered": "has already been answered",
                     "expired": "has expired"}.get(entry.status, f"is {entry.status}")
            raise ValueError(f"questionnaire {submission.step_id} #{submission.occurrence} {state}")

    @workflow.update
    async def migrate(self, request: MigrationRequest) -> MigrationOutcome:
        """Follow a newer version from now on, at a safe point; adds no command itself (workflows/migration.py)."""
        await workflow.wait_condition(self._at_safe_point)
        current, now = self._run.pathway, workflow.now()
        if request.pathway.version == current.version:
            return MigrationOutcome(status="unchanged", from_version=current.version, to_version=current.version)
        plan = plan_migration(current, request.pathway, self._entries, self._run.anchor, self._run.timezone, now)
        if plan.blocked:
            raise ApplicationError("cannot migrate: " + "; ".join(plan.blocked), non_retryable=True)
        self._entries, record = migrated(self._entries, plan, current, request.actor, now)
        self._replan({entry.key for entry in record.replaced}, set(record.planned), request.pathway)
        self._migrations.append(record)
        self._events.append(migration_event(now, record))
        return MigrationOutcome(status="migrated", from_version=plan.from_version, to_version=plan.to_version, plan=plan)

    @workflow.update
    async def rollback_migration(self, request: RollbackRequest) -> MigrationOutcome:
        """Undo the last migration, possible until the first touchpoint of its plan is due."""
        await workflow.wait_condition(self._at_safe_point)
        migration = self._migrations[-1]
        if why := can_roll_back(migration, self._entries, workflow.now()):
            raise ApplicationError(f"cannot roll back: {why}", non_retryable=True)
        self._entries = rolled_back(self._entries, migration)
        self._replan(set(migration.planned), {entry.key for entry in migration.replaced}, migration.previous)
        self._migrations.pop()
        self._events.append(migration_event(workflow.now(), migration, rolled_back_by=request.actor))
        return MigrationOutcome(status="rolled_back", from_version=migration.plan.to_version,
                                to_version=migration.plan.from_version)

    @migrate.validator
    def _migrate_only_while_running(self, request: MigrationRequest) -> None:
        self._refuse_version_change_when_over_or_held()

    @rollback_migration.validator
    def _roll_back_only_a_migration(self, request: RollbackRequest) -> None:
        self._refuse_version_change_when_over_or_held()
        if not self._migrations:
            raise ValueError("this enrollment has not been migrated")

    def _refuse_version_change_when_over_or_held(self) -> None:
        if self._ended_by() is not None or self._finished:
            raise ValueError(f"the enrollment is {self._status()}")
        if isinstance(self._performing, StartEscalation):
            raise ValueError("an escalation holds this pathway until it is resolved; change versions after that")

    def _at_safe_point(self) -> bool:
        """Nothing being performed: no delivery, questionnaire opening or call task half done."""
        return self._performing is None and not self._in_flight and self._opening_call is None

    def _replan(self, leaving: set[str], arriving: set[str], pathway: Pathway) -> None:
        """Planned touchpoints `leaving` off the agenda, `arriving` ones on, and `pathway` followed from now."""
        self._agenda.keep_only(lambda item: not (item.entry.key in leaving and item.entry.status == "planned"))
        for entry in self._entries:
            if entry.key in arriving and entry.status == "planned":
                self._begin(entry)
        self._run = self._run.model_copy(update={"pathway": pathway})

    @workflow.query
    def rules_pathway(self, key: str) -> Pathway:
        """The version whose rules a touchpoint follows: the one it began under if a migration found it in progress."""
        return next((m.previous for m in self._migrations if key in m.kept), self._run.pathway)

    @staticmethod
    def _history_is_long() -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > HISTORY_EVENTS_PER_RUN

    def _carried(self) -> CarriedState:
        return CarriedState(entries=self._entries, agenda=carried_items(self._agenda, self._entries), tags=self._tags,
                            events=self._events, escalations=self._escalations, cancel_reason=self._cancel_reason,
                            stop_reason=self._stop_reason, migrations=self._migrations, pause=self._pause,
                            held=carried_items(self._held, self._entries))

    def _status(self) -> str:
        if self._cancel_reason is not None:
            return "cancelled"
        if self._stop_reason is not None:
            return "stopped"
        return "completed" if self._finished else "active"

    def _ended_by(self) -> str | None:
        return self._cancel_reason or self._stop_reason

    def _entry(self, step_id: str, occurrence: int, kind: str) -> TimelineEntry | None:
        """None if there is no such occurrence of a step of this kind (validators say so)."""
        return next((e for e in self._entries
                     if e.step_id == step_id and e.occurrence == occurrence and e.kind == kind), None)


    def _close_remaining(self) -> None:
        """Once the enrollment is cancelled or stopped, nothing not yet started will happen."""
        reason = self._ended_by()
        if reason is None:
            return
        self._agenda.keep_only(lambda item: item.outlives_end)
        still_due = {item.entry.key for item in self._agenda if isinstance(item, SendMessage)}
        for entry in self._entries:
            if entry.status in ("planned", "open") and entry.key not in self._in_flight and entry.key not in still_due:
                entry.status, entry.at, entry.detail = "cancelled", workflow.now(), reason

    async def _sleep_until(self, due: datetime) -> bool:
        """Wait on a durable timer until `due`; False if the agenda changed first (look again)."""
        delay = due - workflow.now()
        if delay <= timedelta(0):
            return True
        changes = self._agenda.changes
        try:
            await workflow.wait_condition(lambda: self._agenda.changes != changes, timeout=delay)
            return False
        except TimeoutError:
            return True

    async def _perform(self, item: AgendaItem) -> None:
        if self._held_back(item):
            return
        entry = item.entry
        match item:
            case SendMessage():
                await self._in_flight.start(entry.key, self._deliver(entry, item.sent_by_rule))
            case OpenQuestionnaire():
                await self._open_questionnaire(entry)
            case Remind() if entry.status == "open":
                await self._remind(entry, item.due)
            case Expire() if entry.status == "open":
                await self._expire_questionnaire(entry)
            case StartEscalation(trigger=trigger, escalate=escalate):
                await self._escalate(entry, trigger, escalate)
            case OpenCall():
                await self._open_call(entry)
            case AppointmentItem():
                await self._perform_appointment(item)

    def _must_wait(self) -> bool:
        return self._more_may_come() or self._waiting_for_resume() or self._may_still_call()

    async def _open_questionnaire(self, entry: TimelineEntry) -> None:
        step = self.rules_pathway(entry.key).step(entry.step_id)
        # Reminders and expiry count from the scheduled opening, or from a late one (after an
        # outage) in whole seconds: timings authors and tests can state exactly.
        opened = max(entry.due, workflow.now().replace(microsecond=0))
        reminders, expires = questionnaire_window(self._run.pathway, step, opened, self._run.timezone)
        entry.status, entry.at, entry.closes, entry.reminders = "open", opened, expires, reminders
        await effects.bookkeeping(self._run, OPEN_QUESTIONNAIRE, questionnaire_occurrence(self._run, step, entry, opens=opened))
        for due in reminders:
            self._agenda.add(Remind(due, entry))
        self._agenda.add(Expire(expires, entry))
        await self._send(entry, purpose="invitation", template="template", form=form_link(step, entry))

    async def _remind(self, entry: TimelineEntry, due: datetime) -> None:
        step = self.rules_pathway(entry.key).step(entry.step_id)
        entry.reminders_sent += 1
        await self._send(entry, purpose=f"reminder-{entry.reminders_sent}", due=due, template="reminder_template",
                         form=form_link(step, entry))

    async def _expire_questionnaire(self, entry: TimelineEntry) -> None:
        step = self.rules_pathway(entry.key).step(entry.step_id)
        self._reach(entry, "expired", at=workflow.now())
        await effects.bookkeeping(self._run, EXPIRE_QUESTIONNAIRE, questionnaire_occurrence(self._run, step, entry, opens=entry.due))
        if step.on_expire:
            expired = Decision.always(step.on_expire, "no answer before expiry")
            entry.outcome = self._apply(expired, entry, RuleOutcome())

    def _apply(self, decision: Decision, entry: TimelineEntry, outcome: RuleOutcome) -> RuleOutcome:
        """Act on every match in order; rules that could not decide are told, not raised."""
        outcome.errors.extend(decision.errors)
        for match in decision.matches:
            self._act(match.actions, entry, match.trigger, outcome)
        return outcome

    def _act(self, actions: Actions, entry: TimelineEntry, trigger: str, outcome: RuleOutcome) -> None:
        """Apply a rule's actions: tags and stop now, sends and escalations on the agenda right away."""
        now = workflow.now()
        for tag in actions.tag:
            if tag not in self._tags:
                self._tags.append(tag)
                self._events.append(TimelineEvent(at=now, kind="tag", detail=f"{tag} ({entry.key}, {trigger})"))
            outcome.tags.append(tag)
        for step_id in actions.send:
            sent = self._new_occurrence(step_id, "message", f"sent by {entry.key}, {trigger}")
            self._agenda.add(SendMessage(now, sent, sent_by_rule=True))
            outcome.sent.append(step_id)
        for step_id in actions.call:
            call = self._new_occurrence(step_id, "call", f"opened by {entry.key}, {trigger}")
            self._agenda.add(OpenCall(now, call))
            outcome.calls.append(step_id)
        if actions.escalate:
            self._agenda.add(StartEscalation(now, entry, trigger, actions.escalate))
            outcome.escalations.append(actions.escalate.reason)
        if actions.stop and self._ended_by() is None:
            self._stop_reason = f"stopped by {entry.key}, {trigger}"
            self._events.append(TimelineEvent(at=now, kind="stop", detail=self._stop_reason))
            outcome.stopped = True
            self._close_remaining()

    def _new_occurrence(self, step_id: str, kind: str, detail: str) -> TimelineEntry:
        """A touchpoint a rule adds now, numbered after the step's earlier occurrences."""
        occurrence = 1 + sum(1 for e in self._entries if e.step_id == step_id)
        added = TimelineEntry(step_id=step_id, kind=kind, due=workflow.now(), occurrence=occurrence, detail=detail)
        self._entries.append(added)
        return added

    async def _escalate(self, entry: TimelineEntry, trigger: str, escalate: Escalate) -> None:
        """Start the escalation's own workflow; it outlives this one until a person resolves it."""
        self._escalations += 1
        start = escalation_start(self._run, entry, trigger, escalate, f"{self._run.enrollment_id}-{self._escalations}")
        child = await workflow.start_child_workflow(EscalationWorkflow.run, start,
                                                    id=escalation_workflow_id(start.escalation_id),
                                                    parent_close_policy=ParentClosePolicy.ABANDON)
        self._events.append(TimelineEvent(at=workflow.now(), kind="escalation", escalation_id=start.escalation_id,
                                          detail=f"{start.priority}: {escalate.reason} ({entry.key}, {trigger})"))
        if start.policy.pause_pathway:
            await child  # every other step waits until a person resolves it

    async def _open_call(self, entry: TimelineEntry) -> None:
        step = self.rules_pathway(entry.key).step(entry.step_id)
        entry.attempts += 1
        entry.status, entry.at = "open", workflow.now()
        self._opening_call = entry.key
        try:
            await effects.bookkeeping(self._run, OPEN_CALL_TASK, call_task(self._run, step, entry, due=workflow.now()))
        finally:
            self._opening_call = None

