"""For the orchestrator and the scraper: is the process alive, can it serve (database and Temporal
reachable), and its Prometheus metrics. None of it touches patient data, so none of it needs an account;
keep /metrics inside the hospital's network all the same (docs/deploy.md)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import ServicesDep
from api.metrics import served_registry
from api.security import public

router = APIRouter(tags=["health"])

Public = Annotated[None, Depends(public)]
# Shorter than the orchestrator's own check timeout (5 s in docker-compose.yml), so it hears "no" rather than nothing.
CHECK_TIMEOUT = timedelta(seconds=2)

Check = Literal["ok", "unreachable"]


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    database: Check
    temporal: Check


@router.get("/health/live", response_model=Liveness)
async def live(_: Public) -> Liveness:
    """The process serves requests (restart it if not)."""
    return Liveness()


@router.get("/health/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(services: ServicesDep, response: Response, _: Public) -> Readiness:
    """The database and Temporal answer; 503 naming which does not (send no traffic here until they do)."""
    readiness = Readiness(database=await _database(services), temporal=await _temporal(services))
    if "unreachable" in (readiness.database, readiness.temporal):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return readiness


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
async def metrics(_: Public) -> Response:
    """Prometheus metrics: requests and latency by route template and status, and the process's own."""
    return Response(generate_latest(served_registry()), media_type=CONTENT_TYPE_LATEST)


async def _database(services: ServicesDep) -> Check:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT.total_seconds()), services.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - whatever the driver raises, the answer is "not ready"
        return "unreachable"
    return "ok"


async def _temporal(services: ServicesDep) -> Check:
    try:
        healthy = await services.temporal.service_client.check_health(timeout=CHECK_TIMEOUT)
    except Exception:  # noqa: BLE001 - as above: an RPC error of any kind means not ready
        return "unreachable"
    return "ok" if healthy else "unreachable"
