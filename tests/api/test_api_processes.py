"""The API served by several processes on one port (WEB_CONCURRENCY): /metrics, answered by any one
of them, counts every process's requests. Real uvicorn processes on loopback."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx

from api.metrics import MULTIPROCESS_DIR
from services.settings import Settings
from tests.api.test_health import request_counts
from tests.stack import spawn, until
from tools.devstack import accepts_connections
from tools.smtp_sink import free_port

PROCESSES = 2


def counting_processes(metrics: Path) -> set[str]:
    """The processes that have counted a request: each writes its own file, named with its pid."""
    return {path.stem.rsplit("_", 1)[-1] for path in metrics.glob("counter_*.db")}


async def test_metrics_sum_the_requests_of_every_api_process(settings: Settings, own_database_url: str,
                                                             tmp_path: Path):
    port = free_port()
    (metrics := tmp_path / "metrics").mkdir()
    environment = {name: value for name, value in os.environ.items() if not name.startswith("CAREPATH_")} | {
        "CAREPATH_ENVIRONMENT": "test", "CAREPATH_DATABASE_URL": own_database_url,
        "CAREPATH_TEMPORAL_ADDRESS": settings.TEMPORAL_ADDRESS, "CAREPATH_PATHWAYS_DIR": str(settings.PATHWAYS_DIR),
        "WEB_CONCURRENCY": str(PROCESSES), MULTIPROCESS_DIR: str(metrics)}
    api = spawn("api", [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1",
                        "--port", str(port)], environment, tmp_path / "api.log")
    try:
        await until(lambda: accepts_connections(port), "the API to listen", api)
        # A connection per request, until the kernel has handed some to each process.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False,
                                     limits=httpx.Limits(max_keepalive_connections=0)) as anonymous:
            sent = 0

            async def every_process_counted() -> bool:
                nonlocal sent
                assert (await anonymous.get("/auth/me")).status_code == 401
                sent += 1
                return len(counting_processes(metrics)) == PROCESSES

            await until(every_process_counted, "a request answered by each API process", api, interval=0.05)
            scrapes = [request_counts((await anonymous.get("/metrics")).text) for _ in range(PROCESSES * 3)]
    finally:
        api.stop()

    # Whichever process answered the scrape, it counted every process's requests.
    assert {scrape[("/auth/me", "GET", "401")] for scrape in scrapes} == {sent}
