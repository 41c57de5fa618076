"""Delivering messages: the only place where a patient's details meet a template and a channel.

Once, as near as SMTP allows. An attempt claims the message's row (its key: enrollment, step,
occurrence, purpose) for a lease longer than an attempt can last; while that lease holds, another
attempt (Temporal retrying after a timeout, while the first may still be talking to the server)
waits instead of sending, and only the holder of the claim records the outcome, so a late attempt
never overwrites a newer one. The one ambiguous case is an attempt that lost its lease while
sending: whether the server took the message is unknown, so the next attempt sends it again with
the same Message-ID (mail systems and clients recognise the repeat). A possible duplicate, never a
silent loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels import (
    Channel,
    OutgoingMessage,
    Recipient,
    SmsContent,
    WeChatContent,
)
from activities.metrics import DELIVERY_LATENESS, TOUCHPOINTS
from activities.reach import (
    channels_to_try,
    hold_for,
    patient_for_delivery,
    preferences_of,
)
from language.reach import DEFAULT_DAILY_BUDGET, channel_order
from language.templates import TemplateRefused, render
from store.db import (
    CallTaskRecord,
    Enrollment,
    Patient,
    QuestionnaireRecord,
    TouchpointRecord,
    utcnow,
)
from workflows.contracts import (
    DELIVER_MESSAGE,
    RECORD_ENROLLMENT_STATUS,
    DeliveryReceipt,
    EnrollmentStatusChange,
    MessageDelivery,
)

# Longer than an attempt can take (its 30 s start-to-close timeout, SMTP's own 20 s, the database):
# past it, the attempt is surely over, one way or another.
CLAIM_LEASE = timedelta(seconds=90)


def _attempt_of(info: activity.Info) -> str:
    return f"{info.workflow_run_id}/{info.activity_id}/{info.attempt}"


class FormLinkSigner(Protocol):
    """Makes the signed link to one questionnaire occurrence's form (services.links.FormLinks)."""

    def url(self, enrollment_id: str, step_id: str, occurrence: int, expires: datetime) -> str: ...


class DeliveryActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], channels: Mapping[str, Channel],
                 links: FormLinkSigner, daily_budget: int = DEFAULT_DAILY_BUDGET):
        self._sessions = sessions
        self._channels = channels
        self._links = links
        # Messages a patient takes a local day unless their preferences say otherwise.
        self._daily_budget = daily_budget

    @activity.defn(name=DELIVER_MESSAGE)
    async def deliver_message(self, request: MessageDelivery) -> DeliveryReceipt:
        """Send one occurrence exactly once (the key is claimed in the database before sending), by the first
        of the patient's channels that takes it, unless the patient's quiet hours or daily budget hold it."""
        claim = _attempt_of(activity.info())
        async with self._sessions.begin() as session:
            patient = await patient_for_delivery(session, request.enrollment_id, lock=bool(request.waits_for))
            if patient is None:
                raise ApplicationError(f"enrollment {request.enrollment_id} has no patient", type="NoPatient",
                                       non_retryable=True)
            preferences = await preferences_of(session, patient.id)
            channels = channels_to_try(request, patient, preferences, self._channels)
            if not channels:
                wanted = ", ".join(channel_order([], request.channel, request.reach, patient.locale))
                raise ApplicationError(f"no channel of {wanted} is configured", type="NoChannel", non_retryable=True)
            record = await self._claim(session, request, claim, channels[0])
            if record.status == "sent":
                TOUCHPOINTS.labels(record.channel, "duplicate").inc()
                return DeliveryReceipt(duplicate=True, channel=record.channel)
            hold = await hold_for(session, request, patient, preferences, self._daily_budget, record.id)
            if hold is not None:
                record.status, record.claim, record.claimed_until = "deferred", None, None
                return DeliveryReceipt(duplicate=False, deferred_until=hold.until, deferred_for=hold.why)
            record_id = record.id
        async with self._sessions() as outcome:
            # The connection that records the outcome is taken now, before sending: once the server has the
            # message, nothing may queue for the pool until the row says sent, for a worker lost in between
            # leaves the message to go again. Under a burst that queue held outcomes for seconds.
            await outcome.connection()
            try:
                message = self._compose(request, patient)
            except TemplateRefused as refused:
                # The same template would be refused on every retry: record it and let the pathway go on.
                await self._record(outcome, record_id, claim, status="failed", last_error=str(refused))
                TOUCHPOINTS.labels(channels[0], "failed").inc()
                raise ApplicationError(str(refused), type="TemplateRefused", non_retryable=True) from None
            recipient = Recipient(email=patient.email, phone=patient.phone, wechat_openid=patient.wechat_openid,
                                  hospital_number=patient.hospital_number)
            passed_over: list[str] = []
            for channel in channels:
                try:
                    provider_message_id = await self._channels[channel].send(recipient, message)
                    break
                except ApplicationError as error:
                    TOUCHPOINTS.labels(channel, "failed").inc()
                    if not error.non_retryable:
                        # Down for now (an outage): this channel again on the next attempt, as for everyone.
                        await self._record(outcome, record_id, claim, status="failed", channel=channel,
                                           last_error=error.message)
                        raise
                    # This channel cannot reach this patient (no address, refused for good): the next may.
                    passed_over.append(f"{channel}: {error.message}")
                    refusal = error
            else:
                # One channel tried: its own refusal, as it says; several: each one's.
                if len(channels) > 1:
                    refusal = ApplicationError("no channel reached the patient (" + "; ".join(passed_over) + ")",
                                               type="Unreached", non_retryable=True)
                await self._record(outcome, record_id, claim, status="failed", last_error=refusal.message)
                raise refusal
            sent_at = utcnow()
            await self._record(outcome, record_id, claim, status="sent", sent_at=sent_at, channel=channel,
                               message_id=message.message_id, provider_message_id=provider_message_id,
                               last_error="; ".join(passed_over) or None)
        TOUCHPOINTS.labels(channel, "sent").inc()
        DELIVERY_LATENESS.observe(max((sent_at - request.due).total_seconds(), 0))
        # Ids only: the log carries the enrollment (in the activity's extras), never who or where to.
        activity.logger.info("sent %s occurrence %d (%s) by %s", request.step_id, request.occurrence,
                             request.purpose, channel)
        return DeliveryReceipt(duplicate=False, channel=channel, passed_over="; ".join(passed_over) or None)

    @activity.defn(name=RECORD_ENROLLMENT_STATUS)
    async def record_enrollment_status(self, change: EnrollmentStatusChange) -> None:
        """Record the status; an ended enrollment's open questionnaires close and its open call tasks are
        cancelled in the same transaction, so no link or worklist outlives the end. A retry changes nothing."""
        async with self._sessions.begin() as session:
            enrollment = await session.get(Enrollment, change.enrollment_id)
            if enrollment is None:
                raise ApplicationError(f"enrollment {change.enrollment_id} does not exist", non_retryable=True)
            enrollment.status, enrollment.status_reason = change.status, change.reason
            if change.status != "active":
                enrollment.ended_at = enrollment.ended_at or utcnow()
                reason = change.reason or f"the enrollment {change.status}"
                await session.execute(
                    update(QuestionnaireRecord)
                    .where(QuestionnaireRecord.enrollment_id == change.enrollment_id, QuestionnaireRecord.status == "open")
                    .values(status="closed", closed_reason=reason))
                await session.execute(
                    update(CallTaskRecord)
                    .where(CallTaskRecord.enrollment_id == change.enrollment_id, CallTaskRecord.status == "open")
                    .values(status="cancelled", closed_reason=reason))

    async def _claim(self, session: AsyncSession, request: MessageDelivery, claim: str,
                     channel: str) -> TouchpointRecord:
        record = await session.scalar(
            select(TouchpointRecord).where(
                TouchpointRecord.enrollment_id == request.enrollment_id,
                TouchpointRecord.step_id == request.step_id,
                TouchpointRecord.occurrence == request.occurrence,
                TouchpointRecord.purpose == request.purpose,
            )
        )
        now = utcnow()
        if record is None:
            # A second attempt inserting the same key at once fails on the unique key, and is retried.
            record = TouchpointRecord(enrollment_id=request.enrollment_id, step_id=request.step_id,
                                      occurrence=request.occurrence, purpose=request.purpose, channel=channel,
                                      due_at=request.due, status="sending", attempts=1, claim=claim,
                                      claimed_until=now + CLAIM_LEASE)
            session.add(record)
            await session.flush()
            return record
        if record.status == "sent":
            return record
        # Taken only if still free when written: another attempt may have claimed the row since it was read,
        # and the database re-checks the condition against that attempt's committed claim.
        free = and_(TouchpointRecord.status != "sent",
                    or_(TouchpointRecord.status != "sending", TouchpointRecord.claim.is_(None),
                        TouchpointRecord.claim == claim, TouchpointRecord.claimed_until <= now))
        taken = await session.execute(
            update(TouchpointRecord).where(TouchpointRecord.id == record.id, free)
            .values(status="sending", attempts=TouchpointRecord.attempts + 1, claim=claim,
                    claimed_until=now + CLAIM_LEASE, due_at=request.due))
        await session.refresh(record)
        if taken.rowcount == 0 and record.status != "sent":
            raise ApplicationError("an earlier attempt may still be sending this message; retried after its lease",
                                   type="DeliveryInProgress")
        return record

    async def _record(self, session: AsyncSession, record_id: int, claim: str, **values) -> None:
        """The attempt's outcome, if the attempt still holds the claim; else a newer attempt has taken the
        message over and its outcome stands."""
        taken = await session.execute(update(TouchpointRecord).where(
            TouchpointRecord.id == record_id, TouchpointRecord.claim == claim).values(**values))
        await session.commit()
        if taken.rowcount == 0:
            activity.logger.warning("delivery attempt %s finished after another took over touchpoint %d; "
                                    "its outcome (%s) is not recorded", claim, record_id, values.get("status"))

    def _compose(self, request: MessageDelivery, patient: Patient) -> OutgoingMessage:
        locale = patient.locale if patient.locale in request.templates else next(iter(request.templates))
        template = request.templates[locale]
        context = {
            "patient": {"first_name": patient.given_name},
            "pathway": {"id": request.pathway_id, "title": request.pathway_title},
            "step": {"id": request.step_id, "occurrence": request.occurrence},
        }
        if request.form:
            context["link"] = self._links.url(request.enrollment_id, request.step_id, request.occurrence,
                                              request.form.expires)
        sms = wechat = None
        if template.sms is not None:
            sms = SmsContent(text=render(template.sms.text, context).strip(), template_code=template.sms.template_code,
                             params={name: render(source, context) for name, source in template.sms.params.items()})
        if template.wechat is not None:
            wechat = WeChatContent(template_id=template.wechat.template_id, url=context.get("link"),
                                   fields={name: render(source, context) for name, source in template.wechat.fields.items()})
        return OutgoingMessage(
            subject=render(template.subject, context).strip(),
            body=render(template.body, context),
            message_id=f"<{request.enrollment_id}.{request.step_id}.{request.occurrence}.{request.purpose}@carepath>",
            sms=sms, wechat=wechat,
        )
