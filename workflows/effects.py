"""What the pathway workflow asks of the world: each activity call with its timeouts, its retries and
what its failure means for the patient. Called from PathwayWorkflow; deterministic like it."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from language.model import Step
    from workflows import retries
    from workflows.contracts import (
        ALERT_OPERATIONS,
        DELIVER_MESSAGE,
        SCREEN_FREE_TEXT,
        DeliveryReceipt,
        EnrollmentRun,
        FormLink,
        OperationsAlert,
        TimelineEntry,
        TimelineEvent,
    )
    from workflows.payloads import message_delivery

# Runs started before operations alerts replay without them.
OPERATIONS_ALERTS = "alert-operations"
SCREENING_FAILURE_IS_POSSIBLE_CRISIS = "screening-failure-is-possible-crisis"


async def send(run: EnrollmentRun, entry: TimelineEntry, step: Step, *, purpose: str, templates,
               form: FormLink | None = None, due: datetime | None = None) -> bool:
    """Deliver one message; on final failure record why on the entry and go on with the pathway."""
    try:
        receipt = await workflow.execute_activity(
            DELIVER_MESSAGE,
            message_delivery(run, step, entry, purpose=purpose, templates=templates, due=due or entry.due, form=form),
            result_type=DeliveryReceipt,
            start_to_close_timeout=retries.DELIVERY_ATTEMPT_TIMEOUT,
            retry_policy=retries.DELIVERY_RETRY,
        )
        entry.at = entry.at or workflow.now()
        if receipt.duplicate:
            entry.detail = "already sent by an earlier attempt; not sent again"
        return True
    except ActivityError as error:
        entry.at = entry.at or workflow.now()
        entry.detail = f"{purpose}: {error.cause.message if error.cause else error}"
        await alert_operations(run, "a message could not be delivered", f"{entry.key}: {entry.detail}")
        return False


async def bookkeeping(run: EnrollmentRun, activity: str, payload: object) -> None:
    # Our own database: kept trying however long it is down (each attempt bounded), never giving up and
    # failing the enrollment, which would lose every later touchpoint; operations are told if it stalls.
    running = workflow.start_activity(activity, payload, start_to_close_timeout=retries.BOOKKEEPING_TIMEOUT,
                                      retry_policy=retries.BOOKKEEPING_RETRY)
    if workflow.patched(OPERATIONS_ALERTS):
        try:
            await workflow.wait_condition(running.done, timeout=retries.BOOKKEEPING_STALL)
        except TimeoutError:
            await alert_operations(run, "the database has not answered", f"{activity} still failing after "
                                   f"{retries.BOOKKEEPING_STALL}; retrying until it answers")
    await running


async def alert_operations(run: EnrollmentRun, what: str, detail: str) -> None:
    """Tell the operations staff; an alert that cannot go is in the worker's log, and the pathway goes on."""
    if not workflow.patched(OPERATIONS_ALERTS):
        return
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
    if not workflow.patched(SCREENING_FAILURE_IS_POSSIBLE_CRISIS):
        return await workflow.execute_activity(SCREEN_FREE_TEXT, response_id, result_type=bool,
                                               start_to_close_timeout=retries.BOOKKEEPING_TIMEOUT,
                                               retry_policy=retries.DELIVERY_RETRY)
    try:
        return await workflow.execute_activity(SCREEN_FREE_TEXT, response_id, result_type=bool,
                                               start_to_close_timeout=retries.SCREENING_ATTEMPT_TIMEOUT,
                                               retry_policy=retries.SCREENING_RETRY)
    except ActivityError as error:
        cause = error.cause.type if isinstance(error.cause, ApplicationError) else type(error.cause).__name__
        events.append(TimelineEvent(at=workflow.now(), kind="screening_failed",
                                    detail=f"free text not screened ({cause}); treated as possible crisis"))
        return True
