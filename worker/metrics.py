"""The worker's Prometheus metrics: what the activities count (activities/metrics.py), what the database
holds, read when scraped (`StoreGauges`), and the Temporal SDK's own, which its runtime serves on a port
of its own (`temporal_runtime`).

Read on scrape rather than kept in memory: open and overdue escalations and the response rate are the
database's truth, so they survive restarts and every replica reports the same (aggregate them with
max(), not sum()). A scrape waits at most SCRAPE_TIMEOUT for the database; if it does not answer,
`carepath_store_up` is 0 and the rest of the scrape is still served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from services.settings import Settings
from store.db import (
    EscalationRecord,
    QuestionnaireRecord,
    create_engine,
    session_factory,
    utcnow,
)

log = logging.getLogger("carepath.metrics")

SCRAPE_TIMEOUT = timedelta(seconds=5)
# The response rate is of questionnaires opened in this window: recent enough to show a change.
RESPONSE_RATE_WINDOW = timedelta(days=30)


def _store_up() -> GaugeMetricFamily:
    return GaugeMetricFamily("carepath_store_up", "1 if the database answered this scrape's queries in time")


def _store_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (GaugeMetricFamily("carepath_escalations_open", "Escalations not yet resolved, by status (open: nobody "
                              "has acknowledged it yet) and priority", labels=["status", "priority"]),
            GaugeMetricFamily("carepath_escalations_overdue", "Escalations nobody acknowledged within their first "
                              "tier, still unacknowledged, by priority", labels=["priority"]),
            GaugeMetricFamily("carepath_questionnaire_response_ratio", "Questionnaires answered, of those answered "
                              f"or expired, among those opened in the last {RESPONSE_RATE_WINDOW.days} days "
                              "(NaN: none yet)"))


class StoreGauges(Collector):
    """Escalations and questionnaires as the database has them, computed on the worker's event loop
    (where its database engine lives) whenever the metrics endpoint's thread is scraped."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], loop: asyncio.AbstractEventLoop):
        self._sessions = sessions
        self._loop = loop

    def describe(self) -> Iterator[Metric]:
        # What the registry asks when registering: without it, it would collect, on the event loop's
        # own thread, which would then wait for itself.
        yield _store_up()
        yield from _store_families()

    def collect(self) -> Iterator[Metric]:
        up = _store_up()
        try:
            families = asyncio.run_coroutine_threadsafe(self.read(), self._loop).result(SCRAPE_TIMEOUT.total_seconds())
        except Exception:  # whatever failed, the scrape reports the database as down
            log.warning("the database did not answer the metrics scrape", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    async def read(self) -> tuple[Metric, ...]:
        open_escalations, overdue, rate = families = _store_families()
        async with self._sessions() as session:
            unresolved = await session.execute(
                select(EscalationRecord.status, EscalationRecord.priority, func.count(),
                       func.sum(case((EscalationRecord.tier > 1, 1), else_=0)))
                .where(EscalationRecord.status != "resolved")
                .group_by(EscalationRecord.status, EscalationRecord.priority))
            answered, expired = (await session.execute(
                select(func.count().filter(QuestionnaireRecord.status == "answered"),
                       func.count().filter(QuestionnaireRecord.status == "expired"))
                .where(QuestionnaireRecord.opens_at >= utcnow() - RESPONSE_RATE_WINDOW))).one()
        overdue_by_priority: dict[str, int] = {}
        for status, priority, count, past_first_tier in unresolved:
            open_escalations.add_metric([status, priority], count)
            if status == "open":
                overdue_by_priority[priority] = overdue_by_priority.get(priority, 0) + (past_first_tier or 0)
        for priority, count in overdue_by_priority.items():
            overdue.add_metric([priority], count)
        rate.add_metric([], answered / (answered + expired) if answered + expired else float("nan"))
        return families


@asynccontextmanager
async def serving_metrics(settings: Settings) -> AsyncIterator[None]:
    """Serve the default registry, with the database's gauges, at http://METRICS_HOST:METRICS_PORT/
    until exit (METRICS_PORT 0: not at all). Its own one connection: a scrape never waits for one of the
    activities', nor holds one up."""
    if not settings.METRICS_PORT:
        yield
        return
    engine = create_engine(settings.DATABASE_URL, pool_size=1)
    gauges = StoreGauges(session_factory(engine), asyncio.get_running_loop())
    REGISTRY.register(gauges)
    server, thread = start_http_server(settings.METRICS_PORT, addr=settings.METRICS_HOST)
    try:
        yield
    finally:
        server.shutdown()
        thread.join()
        REGISTRY.unregister(gauges)
        await engine.dispose()


def temporal_runtime(host: str, port: int) -> Runtime | None:
    """A Temporal runtime that serves the SDK's metrics (task latencies, activity failures by type, poll
    and slot usage) at http://host:port/metrics; None (the default runtime) for port 0."""
    if not port:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"{host}:{port}")))
