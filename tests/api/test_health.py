"""What the orchestrator and the scraper call: liveness, readiness (database and Temporal reachable, or
503 naming which is not) and /metrics, where requests are counted by route template, never by raw path."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from api.deps import Services
from api.main import create_app
from services.settings import Settings
from store.db import create_engine, session_factory
from tests.api.accounts import client_of
from tools.smtp_sink import free_port


async def test_the_api_is_live_and_ready(anonymous: httpx.AsyncClient):
    live = await anonymous.get("/health/live")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = await anonymous.get("/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"database": "ok", "temporal": "ok"})


async def test_not_ready_names_what_does_not_answer(settings: Settings, tmp_path):
    # An app whose database is a file in a folder that does not exist, and whose Temporal nobody serves.
    app = create_app(settings)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'store.db'}")
    temporal = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    app.state.services = Services(settings, session_factory(engine), temporal, registry=None, instruments={},
                                  links=None, codec=None)
    try:
        async with client_of(app) as client:
            assert (await client.get("/health/live")).status_code == 200
            ready = await client.get("/health/ready")
    finally:
        await engine.dispose()
    assert (ready.status_code, ready.json()) == (503, {"database": "unreachable", "temporal": "unreachable"})


def request_counts(text: str) -> dict[tuple[str, str, str], float]:
    return {(sample.labels["handler"], sample.labels["method"], sample.labels["status"]): sample.value
            for family in text_string_to_metric_families(text) if family.name == "http_requests"
            for sample in family.samples if sample.name == "http_requests_total"}


async def test_metrics_count_requests_by_route_template_and_status(app: FastAPI, api: httpx.AsyncClient,
                                                                   anonymous: httpx.AsyncClient):
    before = request_counts((await anonymous.get("/metrics")).text)
    assert (await api.get("/pathways")).status_code == 200
    assert (await api.get("/patients/pt_not-a-real-patient-4711")).status_code == 404
    assert (await anonymous.get("/no/such/route/4712")).status_code == 404
    await anonymous.get("/health/ready")
    scraped = await anonymous.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    after = request_counts(scraped.text)

    def moved(handler: str, method: str, status: str) -> float:
        return after.get((handler, method, status), 0) - before.get((handler, method, status), 0)

    assert moved("/pathways", "GET", "200") == 1
    assert moved("/patients/{patient_id}", "GET", "404") == 1
    assert moved("none", "GET", "404") == 1  # no route matched: one bucket for all such paths
    assert moved("/health/ready", "GET", "200") == 0  # probes and scrapes are not traffic
    # Raw paths never become labels (digits alone would match the samples' own timestamps).
    assert "not-a-real-patient" not in scraped.text and "/no/such/route" not in scraped.text
    assert 'http_request_duration_seconds_count{handler="/pathways",method="GET",status="200"}' in scraped.text
