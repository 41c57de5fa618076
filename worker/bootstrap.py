"""The one place where settings become clients, channels and activities, wired into a worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from limits import parse as parse_rate_limit
from temporalio.client import Client
from temporalio.worker import Worker

from activities.channels import Channel, EmailChannel, RateLimitedChannel, SmtpSettings
from activities.delivery import DeliveryActivities, DeployedPathways
from activities.escalations import EscalationActivities
from activities.occasions import OccasionActivities
from activities.operations import OperationsActivities
from activities.questionnaires import QuestionnaireActivities
from services.links import form_links, unsubscribe_links
from services.registry import PathwayRegistry
from services.settings import Settings
from services.site import Site, load_site
from store.db import create_engine, session_factory
from worker.channels import patient_channels
from workflows.escalation import EscalationWorkflow
from workflows.pathway import PathwayWorkflow

WORKFLOWS = [PathwayWorkflow, EscalationWorkflow]
# An activity under way when the worker stops (a deploy's SIGTERM, a simulation's end) finishes its few
# database writes rather than being cancelled halfway through a transaction.
GRACEFUL_SHUTDOWN = timedelta(seconds=5)


def smtp_settings(settings: Settings) -> SmtpSettings:
    return SmtpSettings(host=settings.SMTP_HOST, port=settings.SMTP_PORT, sender=settings.SMTP_SENDER,
                        username=settings.SMTP_USERNAME, password=settings.SMTP_PASSWORD.get_secret_value() if settings.SMTP_PASSWORD else None,
                        starttls=settings.SMTP_STARTTLS)


@asynccontextmanager
async def build_worker(client: Client, settings: Settings, task_queue: str | None = None,
                       channels: dict[str, Channel] | None = None, site: Site | None = None,
                       build_id: str | None = None, pathways: DeployedPathways | None = None) -> AsyncIterator[Worker]:
    """A worker with every workflow and activity; its database engine and HTTP client closed on exit.

    `channels` replaces the configured ones by name (the simulator records console messages); `site`
    is the pathways folder's instruments and lexicon, if already loaded; `pathways` replaces the database's
    deployed versions as the source of message templates (the simulator's pathways are not deployed). `build_id`: by default the
    SDK hashes the code of every loaded module (0.1 s), which a one-off simulation does not need.
    """
    engine = create_engine(settings.DATABASE_URL, pool_size=settings.DATABASE_POOL_SIZE,
                           pool_timeout=settings.DATABASE_POOL_TIMEOUT_SECONDS)
    email = EmailChannel(smtp_settings(settings))
    sessions = session_factory(engine)
    reaching_patients = patient_channels(settings, email) | (channels or {})
    # A limit for a channel this site has not configured limits nothing.
    reaching_patients |= {name: RateLimitedChannel(reaching_patients[name], parse_rate_limit(limit))
                          for name, limit in settings.CHANNEL_RATE_LIMITS.items() if name in reaching_patients}
    site = site or load_site(settings.PATHWAYS_DIR)
    delivery = DeliveryActivities(sessions, reaching_patients, form_links(settings), unsubscribe_links(settings),
                                  require_consent=settings.REQUIRE_CONSENT, daily_budget=settings.DAILY_CONTACT_BUDGET,
                                  pathways=pathways or PathwayRegistry(sessions, site.instruments, site.calendars))
    questionnaires = QuestionnaireActivities(sessions, site.instruments, site.lexicon)
    occasions = OccasionActivities(sessions, site.calendars)
    async with httpx.AsyncClient(trust_env=False) as http:
        escalations = EscalationActivities(sessions, email, settings.PUBLIC_BASE_URL, http, settings.webhook_problem)
        operations = OperationsActivities(email, settings.OPERATIONS_EMAIL)
        try:
            yield Worker(client, task_queue=task_queue or settings.TASK_QUEUE, workflows=WORKFLOWS, build_id=build_id,
                         max_cached_workflows=settings.WORKER_CACHED_WORKFLOWS,
                         graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
                         activities=[delivery.deliver_message, delivery.record_enrollment_status,
                                     questionnaires.open_questionnaire, questionnaires.expire_questionnaire,
                                     questionnaires.screen_free_text, escalations.record_escalation,
                                     escalations.notify_team, escalations.notify_team_by_email,
                                     escalations.notify_team_by_webhook, escalations.open_call_task,
                                     operations.alert_operations, occasions.resolve_occasions])
        finally:
            await engine.dispose()
