"""EscalationWorkflow: one per escalation, climbing its policy's tiers until a person acknowledges.

A child of the pathway, abandoned on the parent's close: an escalation outlives a cancelled or
completed enrollment until someone resolves it. Deterministic code only.

Fail safe: nothing on the ladder waits for a notification. Each tier's clock starts when the tier is
due; its team's channels are tried alongside, each a few times; a team none of them could reach
passes the escalation on at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from language.model import EscalationPolicy, Tier
    from workflows.contracts import (
        NOTIFY_TEAM_BY_EMAIL,
        NOTIFY_TEAM_BY_WEBHOOK,
        RECORD_ESCALATION,
        EscalationEvent,
        EscalationStart,
        EscalationState,
        NotificationFailure,
        Notified,
        Reassignment,
        StaffAction,
        TeamNotification,
    )

# Recording in our own database: keep trying for as long as it takes, each attempt bounded.
NOTIFY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                           maximum_interval=timedelta(minutes=2))
ACTIVITY_TIMEOUT = timedelta(seconds=30)
# A channel gets five attempts over about two minutes, then its failure is recorded and the ladder
# moves on: a team that cannot be told must not hold an escalation for its whole ack_within.
CHANNEL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=10), backoff_coefficient=2.0,
                            maximum_interval=timedelta(minutes=1), maximum_attempts=5)
CHANNEL_ATTEMPT_TIMEOUT = timedelta(seconds=30)
CHANNELS = {"email": NOTIFY_TEAM_BY_EMAIL, "webhook": NOTIFY_TEAM_BY_WEBHOOK}


@dataclass
class _Page:
    """One telling of one team: how many of its channels are still trying, and whether one got through."""

    trying: int
    delivered: bool = False
    failed: bool = False

    @property
    def unreachable(self) -> bool:
        return self.trying == 0 and not self.delivered


@workflow.defn
class EscalationWorkflow:
    @workflow.init
    def __init__(self, start: EscalationStart) -> None:
        self._start = start
        self._state = EscalationState(escalation_id=start.escalation_id, enrollment_id=start.enrollment_id,
                                      status="open", priority=start.priority, reason=start.reason)
        self._reassigned_to: str | None = None
        self._background: set[asyncio.Task[None]] = set()

    @workflow.run
    async def run(self, start: EscalationStart) -> EscalationState:
        await self._record("opened", actor="system")
        await self._follow(start.policy)
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
        tier = len(self._state.notified) + 1
        self._page(action.to_team, tier)
        await self._record("notified", actor="system", team=action.to_team, tier=tier)
        return self._state

    @reassign.validator
    def _reassign_while_unresolved(self, action: Reassignment) -> None:
        self._refuse_unless_notified(action)
        if self._state.status == "resolved":
            raise ValueError(f"escalation {self._start.escalation_id} is already resolved")

    def _refuse_unless_notified(self, action: StaffAction) -> None:
        if action.team not in {n.team for n in self._state.notified}:
            raise ValueError(f"team '{action.team}' was not asked to look at escalation {self._start.escalation_id}")

    def _answered(self) -> bool:
        return self._state.status != "open" or self._reassigned_to is not None

    async def _follow(self, policy: EscalationPolicy) -> None:
        """Climb until someone answers; then, with resolve_within, start over if it is not resolved in time."""
        while True:
            await self._climb(policy.tiers)
            await workflow.wait_condition(lambda: self._state.status != "open")
            if policy.resolve_within is None or await self._until(lambda: self._state.status == "resolved",
                                                                  policy.resolve_within):
                return
            self._state.status = "open"
            self._state.acknowledged_by = self._state.acknowledged_at = None
            self._reassigned_to = None
            await self._record("reopened", actor="system")

    async def _climb(self, tiers: list[Tier]) -> None:
        for tier, rung in enumerate(tiers, start=1):
            page = self._page_on_the_ladder(rung.notify, tier)
            if tier < len(tiers) and rung.ack_within is not None:
                await self._until(lambda: self._answered() or page.unreachable, rung.ack_within)
                if self._answered():
                    return
                continue
            while rung.repeat is not None and not await self._until(self._answered, rung.repeat):
                self._page_on_the_ladder(rung.notify, tier)

    def _page_on_the_ladder(self, team: str, tier: int) -> _Page:
        """Page and record it alongside: the tier's clock starts now, whatever our database or channels do."""
        page = self._page(team, tier)
        self._in_background(self._record("notified", actor="system", team=team, tier=tier))
        return page

    async def _until(self, condition: Callable[[], bool], limit: timedelta) -> bool:
        """Whether `condition` held within `limit`."""
        try:
            await workflow.wait_condition(condition, timeout=limit)
            return True
        except asyncio.TimeoutError:
            return False

    def _page(self, team: str, tier: int) -> _Page:
        """Start telling a team by each of its channels; the caller's clock runs meanwhile."""
        number = 1 + sum(1 for told in self._state.notified if (told.team, told.tier) == (team, tier))
        self._state.notified.append(Notified(team=team, tier=tier, at=workflow.now()))
        notification = TeamNotification(
            escalation_id=self._start.escalation_id, enrollment_id=self._start.enrollment_id, team=team, tier=tier,
            priority=self._start.priority, reason=self._start.reason, trigger=self._start.trigger, page=number)
        page = _Page(trying=len(CHANNELS))
        for channel in CHANNELS:
            self._in_background(self._tell(page, channel, notification))
        return page

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        # Held until done: the event loop keeps only a weak reference to a task.
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _tell(self, page: _Page, channel: str, notification: TeamNotification) -> None:
        """Page by one channel (its activity answers False when the team has no such channel)."""
        try:
            delivered = await workflow.execute_activity(
                CHANNELS[channel], notification, result_type=bool,
                start_to_close_timeout=CHANNEL_ATTEMPT_TIMEOUT, retry_policy=CHANNEL_RETRY)
        except ActivityError as failure:
            cause = failure.cause
            page.trying, page.failed = page.trying - 1, True
            await self._failed(notification, channel,
                               (cause.type if isinstance(cause, ApplicationError) else None) or type(cause).__name__)
            return
        page.trying, page.delivered = page.trying - 1, page.delivered or delivered
        if page.unreachable and not page.failed:
            await self._failed(notification, "any", "NoChannel")

    async def _failed(self, notification: TeamNotification, channel: str, error: str) -> None:
        self._state.notification_failures.append(NotificationFailure(
            team=notification.team, tier=notification.tier, channel=channel, error=error, at=workflow.now()))
        await self._record("notify_failed", actor="system", team=notification.team, tier=notification.tier,
                           detail=f"{channel}: {error}")

    async def _record(self, action: str, *, actor: str, team: str | None = None, tier: int | None = None,
                      detail: str | None = None) -> None:
        await workflow.execute_activity(
            RECORD_ESCALATION,
            EscalationEvent(start=self._start, action=action, actor=actor, at=workflow.now(),
                            status=self._state.status, team=team, tier=tier, detail=detail),
            start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=NOTIFY_RETRY,
        )
