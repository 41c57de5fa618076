"""Escalations and call tasks as staff see them: rows on a worklist, audit lines, team notifications."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels import EmailChannel, OutgoingMessage, Recipient
from store.db import (
    CallTaskRecord,
    Enrollment,
    EscalationAudit,
    EscalationRecord,
    Patient,
    TeamRecord,
)
from workflows.contracts import (
    NOTIFY_TEAM,
    NOTIFY_TEAM_BY_EMAIL,
    NOTIFY_TEAM_BY_WEBHOOK,
    OPEN_CALL_TASK,
    RECORD_ESCALATION,
    CallTask,
    EscalationEvent,
    TeamNotification,
)


class EscalationActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], email: EmailChannel, base_url: str,
                 http: httpx.AsyncClient, webhook_problem: Callable[[str], str | None]):
        self._sessions = sessions
        self._email = email
        self._base_url = base_url.rstrip("/")
        self._http = http
        # Checked again at send time: a team row may predate the allowlist, or the allowlist have shrunk.
        self._webhook_problem = webhook_problem

    @activity.defn(name=RECORD_ESCALATION)
    async def record_escalation(self, event: EscalationEvent) -> None:
        """Bring the worklist row up to date and add one audit line; a retry adds nothing twice."""
        start = event.start
        async with self._sessions.begin() as session:
            record = await session.get(EscalationRecord, start.escalation_id)
            if record is None:
                record = EscalationRecord(id=start.escalation_id, enrollment_id=start.enrollment_id,
                                          step_id=start.step_id, occurrence=start.occurrence, trigger=start.trigger,
                                          reason=start.reason, priority=start.priority, policy=start.policy_name,
                                          response_id=start.response_id, opened_at=event.at, tier=0)
                session.add(record)
            record.status = event.status
            if event.action == "reopened":
                record.acknowledged_by = record.acknowledged_at = None
            if event.action in ("notified", "reassigned"):
                record.team = event.team
                record.tier = event.tier if event.tier is not None else record.tier
            if event.action in ("acknowledged", "resolved") and record.acknowledged_at is None:
                record.acknowledged_by, record.acknowledged_at = event.actor, event.at
            if event.action == "resolved":
                record.resolved_by, record.resolved_at = event.actor, event.at
            await session.flush()
            already = await session.scalar(select(EscalationAudit).where(
                EscalationAudit.escalation_id == start.escalation_id, EscalationAudit.action == event.action,
                EscalationAudit.actor == event.actor, EscalationAudit.at == event.at,
                EscalationAudit.team == event.team, EscalationAudit.detail == event.detail))
            if already is None:
                session.add(EscalationAudit(escalation_id=start.escalation_id, action=event.action, actor=event.actor,
                                            team=event.team, tier=event.tier, detail=event.detail, at=event.at))

    @activity.defn(name=NOTIFY_TEAM_BY_EMAIL)
    async def notify_team_by_email(self, notification: TeamNotification) -> bool:
        """Email the team, if it has an address: False if not. The reason and links, never a patient's words or name."""
        team = await self._team(notification)
        if not team.email:
            return False
        await self._email.send(Recipient(email=team.email, phone=None),
                               _notification_email(notification, self._links(notification)))
        return True

    @activity.defn(name=NOTIFY_TEAM_BY_WEBHOOK)
    async def notify_team_by_webhook(self, notification: TeamNotification) -> bool:
        """POST to the team's webhook, if it has one: False if not. A retry carries the same Idempotency-Key."""
        team = await self._team(notification)
        if not team.webhook:
            return False
        problem = self._webhook_problem(team.webhook)
        if problem:
            raise ApplicationError(f"team '{team.id}': {problem}", type="WebhookNotAllowed", non_retryable=True)
        payload = notification.model_dump(include={"escalation_id", "team", "tier", "priority", "reason", "trigger"})
        try:
            response = await self._http.post(team.webhook, json=payload | {"links": self._links(notification)},
                                             headers={"Idempotency-Key": _page_key(notification)}, timeout=10)
            response.raise_for_status()
        except httpx.HTTPStatusError as error:
            code = error.response.status_code
            # A refusal (a wrong address, a revoked token) will not change in the next minutes: say so now.
            raise ApplicationError(f"webhook of team '{team.id}' answered {code}", type=f"WebhookStatus{code}",
                                   non_retryable=400 <= code < 500 and code not in (408, 429)) from None
        except httpx.HTTPError as error:
            raise ApplicationError(f"webhook of team '{team.id}' failed ({type(error).__name__})",
                                   type="WebhookUnreachable") from None
        return True

    @activity.defn(name=NOTIFY_TEAM)
    async def notify_team(self, notification: TeamNotification) -> None:
        """Every channel in one activity, as escalations opened before each channel had its own still call it."""
        await self.notify_team_by_email(notification)
        await self.notify_team_by_webhook(notification)

    async def _team(self, notification: TeamNotification) -> TeamRecord:
        async with self._sessions() as session:
            team = await session.get(TeamRecord, notification.team)
        if team is None:
            raise ApplicationError(f"team '{notification.team}' is not known; add it (API /teams or pathways/site/teams.yaml)",
                                   type="UnknownTeam")
        return team

    def _links(self, notification: TeamNotification) -> dict[str, str]:
        return {"enrollment": f"{self._base_url}/enrollments/{notification.enrollment_id}",
                "escalation": f"{self._base_url}/escalations/{notification.escalation_id}"}

    @activity.defn(name=OPEN_CALL_TASK)
    async def open_call_task(self, task: CallTask) -> None:
        async with self._sessions.begin() as session:
            existing = await session.scalar(select(CallTaskRecord).where(
                CallTaskRecord.enrollment_id == task.enrollment_id, CallTaskRecord.step_id == task.step_id,
                CallTaskRecord.occurrence == task.occurrence, CallTaskRecord.attempt == task.attempt))
            if existing is not None:
                return
            locale = await session.scalar(select(Patient.locale).join(Enrollment, Enrollment.patient_id == Patient.id)
                                          .where(Enrollment.id == task.enrollment_id))
            script = task.scripts.get(locale) or next(iter(task.scripts.values()), None)
            session.add(CallTaskRecord(enrollment_id=task.enrollment_id, step_id=task.step_id,
                                       occurrence=task.occurrence, attempt=task.attempt, team=task.team,
                                       script=script, status="open", due_at=task.due))


def _notification_email(notification: TeamNotification, links: dict[str, str]) -> OutgoingMessage:
    escalated = " (not acknowledged at the previous tier)" if notification.tier > 1 else ""
    body = (f"Priority: {notification.priority}\n"
            f"Reason: {notification.reason}\n"
            f"Triggered by: {notification.trigger}\n"
            f"Tier: {notification.tier}{escalated}\n\n"
            f"Enrollment: {links['enrollment']}\n"
            f"Acknowledge or resolve: {links['escalation']}\n\n"
            "This is decision support: a clinician confirms what happens next.\n")
    return OutgoingMessage(
        subject=f"[{notification.priority.upper()}] carepath escalation: {notification.reason}",
        body=body,
        message_id=f"<{_page_key(notification)}@carepath>",
    )


def _page_key(notification: TeamNotification) -> str:
    """The same for every retry of one page, different for each page: receivers drop a retried duplicate."""
    return f"{notification.escalation_id}.tier{notification.tier}.{notification.team}.page{notification.page}"
