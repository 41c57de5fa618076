"""PathwayWorkflow: one durable run per enrollment, from the first touchpoint to the last.

Deterministic code only. The pathway snapshot arrives in the input, so an enrollment keeps the
version it started with; the plan is recompiled from it on every replay, identically.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pathways.plan import compile_plan
    from workflows.contracts import (
        DELIVER_MESSAGE,
        RECORD_ENROLLMENT_STATUS,
        CancelRequest,
        DeliveryReceipt,
        EnrollmentRun,
        EnrollmentStatusChange,
        MessageDelivery,
        Timeline,
        TimelineEntry,
    )

# A delivery that keeps failing for about an hour is recorded as failed rather than blocking the
# rest of the pathway; each attempt is bounded so a hung SMTP server cannot hold an attempt forever.
DELIVERY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                             maximum_interval=timedelta(minutes=10), maximum_attempts=10)
DELIVERY_ATTEMPT_TIMEOUT = timedelta(seconds=30)
BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
# Enrolling takes a moment after the anchor is chosen: a touchpoint due at "anchor + 0s" still goes.
ENROLLMENT_GRACE = timedelta(minutes=15)


@workflow.defn
class PathwayWorkflow:
    @workflow.init
    def __init__(self, run: EnrollmentRun) -> None:
        self._run = run
        self._entries = [
            TimelineEntry(step_id=t.step_id, occurrence=t.occurrence, kind=t.kind, due=t.due)
            for t in compile_plan(run.pathway, run.anchor, run.timezone)
        ]
        self._cancel_reason: str | None = None
        self._in_flight: str | None = None
        self._finished = False

    @workflow.run
    async def run(self, run: EnrollmentRun) -> Timeline:
        self._skip_touchpoints_due_before_enrollment()
        for entry in self._entries:
            if entry.status != "planned":
                continue
            if not await self._sleep_until(entry.due):
                break
            await self._deliver(entry)
        self._finished = True
        await workflow.execute_activity(
            RECORD_ENROLLMENT_STATUS,
            EnrollmentStatusChange(enrollment_id=run.enrollment_id, status=self._status(), reason=self._cancel_reason),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.timeline()

    @workflow.query
    def timeline(self) -> Timeline:
        return Timeline(enrollment_id=self._run.enrollment_id, status=self._status(),
                        cancel_reason=self._cancel_reason, entries=self._entries)

    @workflow.update
    def cancel(self, request: CancelRequest) -> Timeline:
        """Stop every touchpoint not yet started; one already being delivered completes."""
        self._cancel_reason = request.reason
        for entry in self._entries:
            if entry.status == "planned" and entry.key != self._in_flight:
                entry.status, entry.at, entry.detail = "cancelled", workflow.now(), request.reason
        return self.timeline()

    @cancel.validator
    def _refuse_cancel_when_over(self, request: CancelRequest) -> None:
        if not request.reason.strip():
            raise ValueError("a cancellation needs a reason")
        if self._cancel_reason is not None:
            raise ValueError("the enrollment is already cancelled")
        if self._finished:
            raise ValueError("the enrollment has already completed")

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

    def _status(self) -> str:
        if self._cancel_reason is not None:
            return "cancelled"
        return "completed" if self._finished else "active"

    async def _sleep_until(self, due: datetime) -> bool:
        """Wait for a due time on a durable timer; False if the enrollment was cancelled meanwhile."""
        delay = due - workflow.now()
        if delay > timedelta(0):
            try:
                await workflow.wait_condition(lambda: self._cancel_reason is not None, timeout=delay)
            except asyncio.TimeoutError:
                pass
        return self._cancel_reason is None

    async def _deliver(self, entry: TimelineEntry) -> None:
        step = self._run.pathway.step(entry.step_id)
        self._in_flight = entry.key
        try:
            receipt = await workflow.execute_activity(
                DELIVER_MESSAGE,
                MessageDelivery(
                    enrollment_id=self._run.enrollment_id, pathway_id=self._run.pathway.id,
                    pathway_title=self._run.pathway.title, step_id=step.id, occurrence=entry.occurrence,
                    channel=step.channel, due=entry.due, templates=step.template,
                ),
                result_type=DeliveryReceipt,
                start_to_close_timeout=DELIVERY_ATTEMPT_TIMEOUT,
                retry_policy=DELIVERY_RETRY,
            )
            entry.status, entry.at = "sent", workflow.now()
            if receipt.duplicate:
                entry.detail = "already sent by an earlier attempt; not sent again"
        except ActivityError as error:
            entry.status, entry.at = "failed", workflow.now()
            entry.detail = str(error.cause.message if error.cause else error)
        finally:
            self._in_flight = None
