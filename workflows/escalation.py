"""EscalationWorkflow: one per escalation, climbing its policy's tiers until a person acknowledges.

A child of the pathway, abandoned on the parent's close: an escalation outlives a cancelled or
completed enrollment until someone resolves it. Deterministic code only.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        NOTIFY_TEAM,
        RECORD_ESCALATION,
        EscalationEvent,
        EscalationStart,
        EscalationState,
        Notified,
        Reassignment,
        StaffAction,
        TeamNotification,
    )

# Telling a team is the point of an escalation: keep trying for as long as it takes (each attempt
# bounded), rather than give up after a few failures and let the ladder climb unheard.
NOTIFY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                           maximum_interval=timedelta(minutes=2))
ACTIVITY_TIMEOUT = timedelta(seconds=30)


@workflow.defn
class EscalationWorkflow:
    @workflow.init
    def __init__(self, start: EscalationStart) -> None:
        self._start = start
        self._state = EscalationState(escalation_id=start.escalation_id, enrollment_id=start.enrollment_id,
                                      status="open", priority=start.priority, reason=start.reason)
        self._reassigned_to: str | None = None

    @workflow.run
    async def run(self, start: EscalationStart) -> EscalationState:
        await self._record("opened", actor="system")
        for tier, rung in enumerate(start.policy.tiers, start=1):
            await self._notify(rung.notify, tier)
            if rung.ack_within is None or await self._answered_within(rung.ack_within):
                break
        await workflow.wait_condition(lambda: self._state.status == "resolved")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    @workflow.query
    def state(self) -> EscalationState:
        return self._state

    @workflow.update
    async def acknowledge(self, action: StaffAction) -> EscalationState:
        """Someone of a notified team has it: the ladder stops climbing."""
        self._state.status = "acknowledged"
        self._state.acknowledged_by, self._state.acknowledged_at = action.staff_id, workflow.now()
        await self._record("acknowledged", actor=action.staff_id, team=action.team)
        return self._state

    @acknowledge.validator
    def _acknowledge_once_by_a_notified_team(self, action: StaffAction) -> None:
        self._refuse_unless_notified(action)
        if self._state.status != "open":
            raise ValueError(f"escalation {self._start.escalation_id} is already {self._state.status}")

    @workflow.update
    async def resolve(self, action: StaffAction) -> EscalationState:
        """Closed with an outcome (the outcome's words stay in the database, written by the API)."""
        now = workflow.now()
        if self._state.acknowledged_at is None:
            self._state.acknowledged_by, self._state.acknowledged_at = action.staff_id, now
        self._state.status, self._state.resolved_by, self._state.resolved_at = "resolved", action.staff_id, now
        await self._record("resolved", actor=action.staff_id, team=action.team)
        return self._state

    @resolve.validator
    def _resolve_once_by_a_notified_team(self, action: StaffAction) -> None:
        self._refuse_unless_notified(action)
        if self._state.status == "resolved":
            raise ValueError(f"escalation {self._start.escalation_id} is already resolved")

    @workflow.update
    async def reassign(self, action: Reassignment) -> EscalationState:
        """Hand it to another team, which is told at once; the ladder stops climbing."""
        self._reassigned_to = action.to_team
        await self._record("reassigned", actor=action.staff_id, team=action.to_team)
        await self._notify(action.to_team, tier=len(self._state.notified) + 1)
        return self._state

    @reassign.validator
    def _reassign_while_unresolved(self, action: Reassignment) -> None:
        self._refuse_unless_notified(action)
        if self._state.status == "resolved":
            raise ValueError(f"escalation {self._start.escalation_id} is already resolved")

    def _refuse_unless_notified(self, action: StaffAction) -> None:
        if action.team not in {n.team for n in self._state.notified}:
            raise ValueError(f"team '{action.team}' was not asked to look at escalation {self._start.escalation_id}")

    async def _answered_within(self, limit: timedelta) -> bool:
        try:
            await workflow.wait_condition(
                lambda: self._state.status != "open" or self._reassigned_to is not None, timeout=limit)
            return True
        except asyncio.TimeoutError:
            return False

    async def _notify(self, team: str, tier: int) -> None:
        self._state.notified.append(Notified(team=team, tier=tier, at=workflow.now()))
        await workflow.execute_activity(
            NOTIFY_TEAM,
            TeamNotification(escalation_id=self._start.escalation_id, enrollment_id=self._start.enrollment_id,
                             team=team, tier=tier, priority=self._start.priority, reason=self._start.reason,
                             trigger=self._start.trigger),
            start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=NOTIFY_RETRY,
        )
        await self._record("notified", actor="system", team=team, tier=tier)

    async def _record(self, action: str, *, actor: str, team: str | None = None, tier: int | None = None) -> None:
        await workflow.execute_activity(
            RECORD_ESCALATION,
            EscalationEvent(start=self._start, action=action, actor=actor, at=workflow.now(),
                            status=self._state.status, team=team, tier=tier),
            start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=NOTIFY_RETRY,
        )
