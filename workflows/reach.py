"""How PathwayWorkflow's messages reach the patient: mixed into it (its methods use the workflow's state).

Which channel, and whether the patient's quiet hours or daily budget hold a message, the delivery
activity decides at send time from the patient's preferences (activities/delivery.py); a held message
waits on a durable timer (effects.send). One that no channel could deliver opens the pathway's `reach`
call for staff, so that a patient is never silently unreached.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from language.model import Actions, Escalate
    from workflows import effects
    from workflows.contracts import RuleOutcome, TimelineEntry

_STATUS_AFTER_SENDING = {True: "sent", False: "failed", None: "cancelled"}


class Reaching:
    async def _deliver(self, entry: TimelineEntry, sent_by_rule: bool = False) -> None:
        sent = await effects.send(self._run, entry, self.rules_pathway(entry.key), self._unreached, purpose="scheduled",
                                  template="template", sent_by_rule=sent_by_rule, ended=self._ended_by)
        self._reach(entry, _STATUS_AFTER_SENDING[sent])

    async def _send(self, entry: TimelineEntry, **message) -> None:
        """A questionnaire's invitation or reminder, or a visit's, beside the agenda."""
        await self._in_flight.start(entry.key, effects.send(self._run, entry, self.rules_pathway(entry.key),
                                                            self._unreached, ended=self._ended_by, **message))

    def _may_still_call(self) -> bool:
        """A delivery under way may yet open the reach call: the run goes on until it is done."""
        reach = self._run.pathway.reach
        return bool(self._in_flight) and reach is not None and reach.call is not None

    async def _unreached(self, entry: TimelineEntry, trigger: str, escalate: Escalate) -> None:
        """A message that finally could not go: the pathway's reach call, opened now like a rule's `call:`;
        without one the operations team's escalation."""
        reach = self._run.pathway.reach
        if reach is not None and reach.call is not None and self._ended_by() is None:
            self._act(Actions(call=[reach.call]), entry, trigger, RuleOutcome())
        else:
            await self._escalate(entry, trigger, escalate)
