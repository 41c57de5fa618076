"""What the pathway workflow asks of the world: each activity call with its timeouts, its retries and
what its failure means for the patient. Called from PathwayWorkflow; deterministic like it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    FailureError,
)
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from language.model import Escalate, Pathway
    from language.plan import send_window_at
    from workflows import retries
    from workflows.contracts import (
        ALERT_OPERATIONS,
        DELIVER_MESSAGE,
        PATIENT_DECEASED,
        SCREEN_FREE_TEXT,
        AppointmentNotice,
        DeliveryReceipt,
        EnrollmentRun,
        FormLink,
        MessageDelivery,
        OperationsAlert,
        TemplateName,
        TimelineEntry,
        TimelineEvent,
    )
    from workflows.payloads import message_delivery, undelivered

# The workflow's way of starting an escalation: the entry it is about, the trigger, what to escalate.
Escalating = Callable[[TimelineEntry, str, Escalate], Awaitable[None]]


async def send(run: EnrollmentRun, entry: TimelineEntry, pathway: Pathway, escalate: Escalating, *, purpose: str,
               template: TemplateName, form: FormLink | None = None, due: datetime | None = None,
               appointment: AppointmentNotice | None = None, sent_by_rule: bool = False,
               ended: Callable[[], object] = lambda: None) -> bool | None:
    """Deliver one message of `entry`'s step in `pathway`; on final failure record why on the entry, tell
    operations (by email, and on their worklist through `escalate`, the workflow's own) and go on with the
    pathway. None: held by the patient's wishes (quiet hours, daily budget) until the enrollment `ended`, and
    so never sent."""
    delivery = message_delivery(run, pathway, entry, purpose=purpose, template=template, due=due or entry.due,
                                form=form, appointment=appointment, waits_for=_waits_for(purpose, sent_by_rule))
    try:
        receipt = await _deliver_when_welcome(run, entry, delivery, ended)
        if receipt is None:
            entry.at, entry.detail = workflow.now(), f"{entry.detail}; not sent: {ended()}"
            return None
        entry.at = entry.at or workflow.now()
        entry.channel = receipt.channel or entry.channel
        if receipt.passed_over:
            entry.detail = f"sent by {receipt.channel}; not by {receipt.passed_over}"
        if receipt.duplicate:
            entry.detail = "already sent by an earlier attempt; not sent again"
        return True
    except ActivityError as error:
        if isinstance(error.cause, CancelledError):
            # Stopped for good (workflows/lifecycle.py): not a failure, and the enrollment's end closes the entry.
            raise asyncio.CancelledError from None
        entry.at = entry.at or workflow.now()
        entry.detail = f"{purpose}: {_why(error)}"
        if isinstance(error.cause, ApplicationError) and error.cause.type == PATIENT_DECEASED:
            return False  # nobody is to be told to try again
        await alert_operations(run, "a message could not be delivered", f"{entry.key}: {entry.detail}")
        await escalate(entry, "message not delivered", undelivered(entry))
        return False


def _waits_for(purpose: str, sent_by_rule: bool) -> list[str]:
    """What may hold a message. A rule's message (advice on an answer) goes at once: it may be about the
    patient's safety. A questionnaire's invitation and reminders respect quiet hours but not the budget:
    put off by a day, a screening could expire unanswered. A scheduled message waits for both."""
    if sent_by_rule:
        return []
    return ["quiet_hours", "daily_budget"] if purpose == "scheduled" else ["quiet_hours"]


async def _deliver_when_welcome(run: EnrollmentRun, entry: TimelineEntry, delivery: MessageDelivery,
                                ended: Callable[[], object]) -> DeliveryReceipt | None:
    """Attempt the delivery; while the patient's wishes hold it (the activity answers until when), wait on
    a durable timer until they let it go and the send window is open, then attempt again: the budget is
    counted afresh on the new day. None if the enrollment ended while it waited."""
    while True:
        receipt = await _deliver_through_outages(run, delivery)
        if receipt.deferred_until is None:
            return receipt
        resume = receipt.deferred_until
        if run.pathway.send_window is not None:
            closes, reopens = send_window_at(resume, run.pathway.send_window, run.timezone)
            resume = resume if closes is not None else reopens
        entry.detail = f"deferred until {resume.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({receipt.deferred_for})"
        try:
            await workflow.wait_condition(lambda: ended() is not None,
                                          timeout=max(resume - workflow.now(), timedelta(seconds=1)))
            return None
        except TimeoutError:
            # Due again now: the patient's wishes are judged, and the budget's day counted, from this moment.
            delivery = delivery.model_copy(update={"due": workflow.now()})


async def _deliver_through_outages(run: EnrollmentRun, delivery: MessageDelivery) -> DeliveryReceipt:
    """Attempts until the message goes, a failure no retry can mend (no address, a refused template), or
    DELIVERY_GIVE_UP. Attempts stop when the send window closes and start again, on a durable timer, when
    it next opens: a message held up by an outage goes after recovery, but never at night."""
    window = run.pathway.send_window
    give_up = workflow.now() + retries.DELIVERY_GIVE_UP
    while True:
        now = workflow.now()
        closes = send_window_at(now, window, run.timezone)[0] if window else give_up
        # Outside the window (a rule's message sent at once), one attempt and its quick retries.
        stop = min(give_up, closes or now + retries.DELIVERY_ATTEMPT_TIMEOUT)
        try:
            return await workflow.execute_activity(
                DELIVER_MESSAGE, delivery, result_type=DeliveryReceipt,
                start_to_close_timeout=retries.DELIVERY_ATTEMPT_TIMEOUT, schedule_to_close_timeout=stop - now,
                retry_policy=retries.DELIVERY_OUTAGE_RETRY)
        except ActivityError as error:
            cause = error.cause  # cancelled: stopped for good
            final = isinstance(cause, CancelledError) or (isinstance(cause, ApplicationError) and cause.non_retryable)
            if final or window is None or workflow.now() >= give_up:
                raise
            reopens = send_window_at(workflow.now(), window, run.timezone)[1]
            if reopens >= give_up:
                raise
            await workflow.sleep(reopens - workflow.now())


def _why(error: ActivityError) -> str:
    """On one line (it reaches a worklist reason and an email): the cause, or for attempts that ran out
    of time, the last attempt's failure, which Temporal keeps as the timeout's cause."""
    cause = error.cause
    if isinstance(cause, ActivityTimeout) and cause.cause is not None:
        cause = cause.cause
    return " ".join((cause.message if isinstance(cause, FailureError) else str(error)).split())


async def bookkeeping(run: EnrollmentRun, activity: str, payload: object) -> None:
    # Our own database: kept trying however long it is down (each attempt bounded), never giving up and
    # failing the enrollment, which would lose every later touchpoint; operations are told if it stalls.
    running = workflow.start_activity(activity, payload, start_to_close_timeout=retries.BOOKKEEPING_TIMEOUT,
                                      retry_policy=retries.BOOKKEEPING_RETRY)
    try:
        await workflow.wait_condition(running.done, timeout=retries.BOOKKEEPING_STALL)
    except TimeoutError:
        await alert_operations(run, "the database has not answered", f"{activity} still failing after "
                               f"{retries.BOOKKEEPING_STALL}; retrying until it answers")
    await running


async def alert_operations(run: EnrollmentRun, what: str, detail: str) -> None:
    """Tell the operations staff; an alert that cannot go is in the worker's log, and the pathway goes on."""
    try:
        await workflow.execute_activity(ALERT_OPERATIONS, OperationsAlert(
            enrollment_id=run.enrollment_id, what=what, detail=detail),
            start_to_close_timeout=retries.BOOKKEEPING_TIMEOUT, retry_policy=retries.ALERT_RETRY)
    except ActivityError:
        pass


async def screen(response_id: str, events: list[TimelineEvent]) -> bool:
    """Whether the free text holds crisis words. If it cannot be screened (the database or the worker's
    lexicon unavailable for a few seconds of retries), the answer is the worse case: possible crisis,
    routed urgently by the safety net now, rather than a patient in crisis waiting for an outage."""
    try:
        return await workflow.execute_activity(SCREEN_FREE_TEXT, response_id, result_type=bool,
                                               start_to_close_timeout=retries.SCREENING_ATTEMPT_TIMEOUT,
                                               retry_policy=retries.SCREENING_RETRY)
    except ActivityError as error:
        cause = error.cause.type if isinstance(error.cause, ApplicationError) else type(error.cause).__name__
        events.append(TimelineEvent(at=workflow.now(), kind="screening_failed",
                                    detail=f"free text not screened ({cause}); treated as possible crisis"))
        return True
