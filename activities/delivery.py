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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels import (
    Channel,
    OutgoingMessage,
    Recipient,
    SmsContent,
    Unsubscribe,
    WeChatContent,
)
from activities.metrics import DELIVERY_LATENESS, TOUCHPOINTS
from activities.reach import channels_to_try, hold_for, patient_for_delivery
from language.messages import MessageTemplate
from language.model import Pathway
from language.reach import DEFAULT_DAILY_BUDGET, channel_order
from language.templates import TemplateRefused, render
from store.consent import allowed_channels
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
    PATIENT_DECEASED,
    RECORD_ENROLLMENT_STATUS,
    DeliveryReceipt,
    EnrollmentStatusChange,
    MessageDelivery,
)
from workflows.payloads import templates_of

# Longer than an attempt can take (its 30 s start-to-close timeout, SMTP's own 20 s, the database):
# past it, the attempt is surely over, one way or another.
CLAIM_LEASE = timedelta(seconds=90)

# The row of a touchpoint while an attempt holds its claim: built once (see activities/reach.py).
_HELD_TOUCHPOINT = update(TouchpointRecord).where(TouchpointRecord.id == bindparam("touchpoint"),
                                                  TouchpointRecord.claim == bindparam("holder"))

# A new touchpoint, claimed, unless its key is there already: INSERT ... ON CONFLICT DO NOTHING, which both
# databases speak but SQLAlchemy builds per dialect.
_CLAIMED_COLUMNS = ("enrollment_id", "patient_id", "step_id", "occurrence", "purpose", "channel", "due_at", "status",
                    "attempts", "claim", "claimed_until")
_CLAIM_NEW = {
    dialect: insert(TouchpointRecord).values({name: bindparam(name) for name in _CLAIMED_COLUMNS})
    .on_conflict_do_nothing(index_elements=["enrollment_id", "step_id", "occurrence", "purpose"])
    .returning(TouchpointRecord.id)
    for dialect, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


def _attempt_of(info: activity.Info) -> str:
    return f"{info.workflow_run_id}/{info.activity_id}/{info.attempt}"


@dataclass(frozen=True)
class _Claimed:
    """The touchpoint row an attempt claimed (or found sent)."""

    id: int
    status: str
    channel: str


class FormLinkSigner(Protocol):
    """Makes the signed link to one questionnaire occurrence's form (services.links.FormLinks)."""

    def url(self, enrollment_id: str, step_id: str, occurrence: int, expires: datetime) -> str: ...


class UnsubscribeLinkSigner(Protocol):
    """Makes the patient's signed link to stop one channel (services.links.UnsubscribeLinks)."""

    def url(self, patient_id: str, channel: str) -> str: ...


# The foot of every email, by the patient's language.
UNSUBSCRIBE_FOOTER = {"en": "To stop these emails: {url}", "zh-CN": "退订此类邮件：{url}"}


class DeployedPathways(Protocol):
    """The deployed pathway versions (services.registry.PathwayRegistry: read once per version, then cached)."""

    async def pathway(self, pathway_id: str, version: int) -> Pathway: ...


class DeliveryActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], channels: Mapping[str, Channel],
                 links: FormLinkSigner, unsubscribe: UnsubscribeLinkSigner | None = None,
                 require_consent: bool = False, daily_budget: int = DEFAULT_DAILY_BUDGET,
                 pathways: DeployedPathways | None = None):
        """`pathways`: where a delivery's template reference is read; only deliveries that carry their
        texts (from runs started before references) go without."""
        self._sessions = sessions
        self._channels = channels
        self._links = links
        self._unsubscribe = unsubscribe
        # The site's CAREPATH_REQUIRE_CONSENT: no message on a channel the patient has not consented to.
        self._require_consent = require_consent
        # Messages a patient takes a local day unless their preferences say otherwise.
        self._daily_budget = daily_budget
        self._pathways = pathways

    @activity.defn(name=DELIVER_MESSAGE)
    async def deliver_message(self, request: MessageDelivery) -> DeliveryReceipt:
        """Send one occurrence exactly once (the key is claimed in the database before sending), by the first
        of the patient's channels that takes it and that they have not opted out of, unless the patient's
        quiet hours or daily budget hold it."""
        request, templates = await self._resolved(request)
        claim = _attempt_of(activity.info())
        async with self._sessions.begin() as session:
            found = await patient_for_delivery(session, request.enrollment_id, lock=bool(request.waits_for))
            if found is None:
                raise ApplicationError(f"enrollment {request.enrollment_id} has no patient", type="NoPatient",
                                       non_retryable=True)
            patient, preferences = found
            configured = channels_to_try(request, patient, preferences, self._channels)
            if not configured:
                wanted = ", ".join(channel_order([], request.channel, request.reach, patient.locale))
                raise ApplicationError(f"no channel of {wanted} is configured", type="NoChannel", non_retryable=True)
            # Withdrawn (or, where the site requires it, never given): closed to this patient on every retry.
            channels = await allowed_channels(session, patient.id, configured, require_consent=self._require_consent)
            record = await self._claim(session, request, claim, patient.id, (channels or configured)[0])
            if record.status == "sent":
                TOUCHPOINTS.labels(record.channel, "duplicate").inc()
                return DeliveryReceipt(duplicate=True, channel=record.channel)
            if channels and patient.deceased_at is None:
                hold = await hold_for(session, request, patient, preferences, self._daily_budget, record.id)
                if hold is not None:
                    await session.execute(update(TouchpointRecord).where(TouchpointRecord.id == record.id)
                                          .values(status="deferred", claim=None, claimed_until=None))
                    return DeliveryReceipt(duplicate=False, deferred_until=hold.until, deferred_for=hold.why)
            record_id = record.id
        async with self._sessions() as outcome:
            # The connection that records the outcome is taken now, before sending: once the server has the
            # message, nothing may queue for the pool until the row says sent, for a worker lost in between
            # leaves the message to go again. Under a burst that queue held outcomes for seconds.
            await outcome.connection()
            if patient.deceased_at is not None:
                # Recorded after this message was scheduled, or while it was retried: it must not go.
                await self._record(outcome, record_id, claim, status="cancelled", last_error="the patient has died")
                raise ApplicationError("the patient has died", type=PATIENT_DECEASED, non_retryable=True)
            if not channels:
                # No channel left that the patient lets us use: the pathway goes on without this message.
                why = f"no consent for {' or '.join(configured)}"
                await self._record(outcome, record_id, claim, status="failed", last_error=why)
                TOUCHPOINTS.labels(configured[0], "failed").inc()
                raise ApplicationError(why, type="NoConsent", non_retryable=True)
            try:
                message = self._compose(request, templates, patient)
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

    async def _claim(self, session: AsyncSession, request: MessageDelivery, claim: str, patient_id: str,
                     channel: str) -> _Claimed:
        now = utcnow()
        # The first attempt at a message (nearly every delivery) claims it in one statement. An attempt that
        # finds the key taken (a retry, or another attempt inserting it at this moment, whose transaction the
        # database waits for) goes on to take the existing row over, if it is free.
        inserted = await session.scalar(_CLAIM_NEW[session.bind.dialect.name], {
            "enrollment_id": request.enrollment_id, "patient_id": patient_id, "step_id": request.step_id,
            "occurrence": request.occurrence, "purpose": request.purpose, "channel": channel, "due_at": request.due,
            "status": "sending", "attempts": 1, "claim": claim, "claimed_until": now + CLAIM_LEASE})
        if inserted is not None:
            return _Claimed(inserted, "sending", channel)
        record = await session.scalar(
            select(TouchpointRecord).where(
                TouchpointRecord.enrollment_id == request.enrollment_id,
                TouchpointRecord.step_id == request.step_id,
                TouchpointRecord.occurrence == request.occurrence,
                TouchpointRecord.purpose == request.purpose,
            )
        )
        if record.status == "sent":
            return _Claimed(record.id, record.status, record.channel)
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
        return _Claimed(record.id, record.status, record.channel)

    async def _record(self, session: AsyncSession, record_id: int, claim: str, **values) -> None:
        """The attempt's outcome, if the attempt still holds the claim; else a newer attempt has taken the
        message over and its outcome stands."""
        taken = await session.execute(_HELD_TOUCHPOINT.values(**values), {"touchpoint": record_id, "holder": claim})
        await session.commit()
        if taken.rowcount == 0:
            activity.logger.warning("delivery attempt %s finished after another took over touchpoint %d; "
                                    "its outcome (%s) is not recorded", claim, record_id, values.get("status"))

    async def _resolved(self, request: MessageDelivery) -> tuple[MessageDelivery, dict[str, MessageTemplate]]:
        """The delivery with what its reference names in a deployed pathway version (the pathway's title
        and `reach`, where it does not carry them), and its texts; or as it came, with the texts it carries."""
        if request.templates is not None:
            return request, request.templates
        try:
            pathway = await self._pathways.pathway(request.pathway_id, request.pathway_version)
        except LookupError as unknown:
            # The version every run follows is deployed before it starts: nothing a retry could mend.
            raise ApplicationError(str(unknown), type="UnknownPathway", non_retryable=True) from None
        if request.pathway_title is None:
            request = request.model_copy(update={"pathway_title": pathway.title, "reach": pathway.reach})
        return request, templates_of(pathway.step(request.step_id), request.template)

    def _compose(self, request: MessageDelivery, templates: dict[str, MessageTemplate],
                 patient: Patient) -> OutgoingMessage:
        locale = patient.locale if patient.locale in templates else next(iter(templates))
        template = templates[locale]
        context = {
            "patient": {"first_name": patient.given_name},
            "pathway": {"id": request.pathway_id, "title": request.pathway_title},
            "step": {"id": request.step_id, "occurrence": request.occurrence},
        }
        if request.form:
            context["link"] = self._links.url(request.enrollment_id, request.step_id, request.occurrence,
                                              request.form.expires)
        if request.appointment:
            context["link"] = request.appointment.link
            context["visit"] = f"{request.appointment.at.astimezone(ZoneInfo(patient.timezone)):%Y-%m-%d %H:%M}"
        sms = wechat = None
        if template.sms is not None:
            sms = SmsContent(text=render(template.sms.text, context).strip(), template_code=template.sms.template_code,
                             params={name: render(source, context) for name, source in template.sms.params.items()})
        if template.wechat is not None:
            wechat = WeChatContent(template_id=template.wechat.template_id, url=context.get("link"), kind=template.wechat.kind,
                                   fields={name: render(source, context) for name, source in template.wechat.fields.items()})
        return OutgoingMessage(
            subject=render(template.subject, context).strip(),
            body=render(template.body, context),
            message_id=f"<{request.enrollment_id}.{request.step_id}.{request.occurrence}.{request.purpose}@carepath>",
            sms=sms, wechat=wechat, unsubscribe=self._unsubscribe_of(patient),
        )

    def _unsubscribe_of(self, patient: Patient) -> Unsubscribe | None:
        if self._unsubscribe is None:
            return None
        url = self._unsubscribe.url(patient.id, "email")
        return Unsubscribe(url, UNSUBSCRIBE_FOOTER.get(patient.locale, UNSUBSCRIBE_FOOTER["en"]).format(url=url))
