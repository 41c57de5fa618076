"""Steps written `after` another: their touchpoints join the timeline when the step they follow gets there.

A mixin of PathwayWorkflow (deterministic, like it). The plan compiled at enrollment leaves these
steps out; each time a touchpoint reaches a state (`_reach`), every step following that step in that
state gains an occurrence due its delay later, once per touchpoint it follows (`follows` records which).
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from language.plan import followed_due
    from workflows.agenda import Agenda
    from workflows.contracts import EnrollmentRun, TimelineEntry
    from workflows.deliveries import Deliveries

class FollowingSteps:
    _run: EnrollmentRun
    _entries: list[TimelineEntry]
    _agenda: Agenda
    _in_flight: Deliveries

    def _reach(self, entry: TimelineEntry, status: str, at: datetime | None = None) -> None:
        """`entry` is now `status` (since `at`, when given); the steps that follow it in that state are planned."""
        entry.status = status
        if at is not None:
            entry.at = at
        pathway = self._run.pathway
        following = [step for step in pathway.steps
                     if step.after is not None and step.after.step == entry.step_id and step.after.state == status]
        if not following or self._ended_by() is not None:
            return
        for step in following:
            if any(other.step_id == step.id and other.follows == entry.key for other in self._entries):
                continue  # an answer that arrived twice (the outbox) plans the follow-up once
            added = TimelineEntry(
                step_id=step.id, kind=step.kind, follows=entry.key, detail=f"after {entry.key} {status}",
                occurrence=1 + sum(1 for other in self._entries if other.step_id == step.id),
                due=followed_due(pathway, step, workflow.now(), self._run.timezone, self._run.enrollment_id))
            self._entries.append(added)
            self._begin(added)

    def _more_may_come(self) -> bool:
        """Beside the agenda, what the run must stay for: a phone task waiting for its outcome, or a message
        still being delivered that another step follows once sent."""
        followed = {step.after.step for step in self._run.pathway.steps if step.after is not None}
        return any((entry.kind == "call" and entry.status == "open")
                   or (entry.step_id in followed and entry.key in self._in_flight) for entry in self._entries)
