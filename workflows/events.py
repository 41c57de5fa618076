"""Events into a running enrollment: PathwayWorkflow inherits the `record_event` update from here.

An event (a lab result, a clinic's reading) becomes an entry of the timeline, `<type>#<n>` with
status `received`, so its rules' tags, sends, calls and escalations name it like any touchpoint's;
language/events.py decides them, and PathwayWorkflow's `_apply` acts, as for a response. The
update carries only the values rules compare (the API keeps the rest, and any text, in the
database), and issues no command itself: what the rules decide goes on the agenda.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from language.events import decide_event, rule_values_problem
    from workflows.contracts import EnrollmentEvent, RuleOutcome, TimelineEvent


class EventHandling:
    """The update of PathwayWorkflow (its `_run`, `_tags`, `_events`, `_apply` and friends) taking events."""

    @workflow.update
    def record_event(self, event: EnrollmentEvent) -> RuleOutcome:
        """Record the event on the timeline and act on it by the pathway's `on_event` rules."""
        entry = self._new_occurrence(event.type, "event", f"event {event.event_id}")
        entry.status, entry.at = "received", workflow.now()
        read = ", ".join(f"{name} {value}" for name, value in sorted(event.values.items()))
        self._events.append(TimelineEvent(at=entry.at, kind="event", detail=f"{entry.key}" + (f": {read}" if read else "")))
        entry.outcome = self._apply(decide_event(self._run.pathway, event.type, event.values, self._tags), entry,
                                    RuleOutcome())
        return entry.outcome

    @record_event.validator
    def _accept_declared_events_while_running(self, event: EnrollmentEvent) -> None:
        if self._ended_by() is not None or self._finished or self._pathway_done():
            raise ValueError(f"the enrollment is {'completed' if self._status() == 'active' else self._status()}; "
                             "it takes no more events")
        if why := rule_values_problem(self._run.pathway, event.type, event.values):
            raise ValueError(why)

    def _pathway_done(self) -> bool:
        """Nothing left to do and nothing being done: the run's loop has ended, and would never act on a rule."""
        return self._performing is None and not self._agenda and not self._must_wait()
