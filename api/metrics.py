"""Requests and their latency for Prometheus, by route template (`/patients/{patient_id}`, never a
raw path: ids stay out of metrics, and the number of series stays bounded), method and status."""

from __future__ import annotations

import os

from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator, metrics

# Set when several API processes serve one port (api/__main__.py): each writes its metrics there.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

# Scraped and probed every few seconds: counting them would only drown the traffic that matters.
NOT_COUNTED = ["/metrics", "/health/live", "/health/ready"]
# Made once per process: the metrics they register in the default registry (which /metrics serves,
# api/routes/health.py) then count the requests of every app built in it, not only the first.
COUNT_REQUESTS = metrics.requests()
TIME_REQUESTS = metrics.latency(should_include_status=True)


def instrument(app: FastAPI) -> None:
    # Exact statuses: a 503 (overload, not ready) and a 500 are different alarms. Paths no route
    # matched are counted under the handler "none".
    (Instrumentator(should_group_status_codes=False, excluded_handlers=NOT_COUNTED)
     .add(COUNT_REQUESTS, TIME_REQUESTS)
     .instrument(app))


def served_registry() -> CollectorRegistry:
    """What /metrics serves: this process's metrics, or every API process's summed when there are several."""
    if MULTIPROCESS_DIR not in os.environ:
        return REGISTRY
    every_process = CollectorRegistry()
    MultiProcessCollector(every_process)
    return every_process
