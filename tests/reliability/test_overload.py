"""api/overload.py on a small app of its own: what is answered 503 with Retry-After, and what is not."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI, HTTPException
from sqlalchemy.exc import TimeoutError as PoolTimeout
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from api.overload import Overload


def app_with(limit: int = 8) -> tuple[FastAPI, asyncio.Event, asyncio.Event]:
    entered, release = asyncio.Event(), asyncio.Event()
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict:
        entered.set()
        await release.wait()
        return {"done": True}

    @app.get("/pool")
    async def pool() -> None:
        raise PoolTimeout("QueuePool limit of size 10 overflow 10 reached, connection timed out, timeout 5.00")

    @app.get("/temporal/{code}")
    async def temporal(code: str) -> None:
        raise RPCError("temporal says no", RPCStatusCode[code], b"")

    @app.get("/update")
    async def update() -> None:
        raise WorkflowUpdateRPCTimeoutOrCancelledError()

    @app.get("/busy")
    async def busy() -> None:
        raise HTTPException(503, "no worker answered")

    @app.get("/f/{token}")
    async def form(token: str) -> None:
        raise PoolTimeout("no connection")

    app.add_middleware(Overload, limit=limit)
    return app, entered, release


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url="http://test")


async def test_past_the_limit_a_request_is_refused_at_once_with_retry_after():
    app, entered, release = app_with(limit=1)
    async with client(app) as http:
        first = asyncio.create_task(http.get("/slow"))
        await entered.wait()
        refused = await asyncio.wait_for(http.get("/slow"), 1)
        release.set()
        assert (await first).status_code == 200
        assert (await http.get("/slow")).status_code == 200  # the slot is free again
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "2"
    assert "busy" in refused.json()["detail"]


async def test_a_dependency_that_did_not_keep_up_is_503_with_retry_after():
    app, _, _ = app_with()
    async with client(app) as http:
        for path in ("/pool", "/temporal/DEADLINE_EXCEEDED", "/temporal/UNAVAILABLE", "/temporal/RESOURCE_EXHAUSTED",
                     "/update"):
            answer = await http.get(path)
            assert (path, answer.status_code, answer.headers.get("Retry-After")) == (path, 503, "2")
            assert "try again" in answer.json()["detail"]


async def test_other_errors_stay_errors_and_a_route_503_gets_retry_after():
    app, _, _ = app_with()
    async with client(app) as http:
        assert (await http.get("/temporal/NOT_FOUND")).status_code == 500
        busy = await http.get("/busy")
        form = await http.get("/f/some-token")
    assert (busy.status_code, busy.headers["Retry-After"], busy.json()) == (503, "2", {"detail": "no worker answered"})
    assert (form.status_code, form.headers["Retry-After"]) == (503, "2")
    assert form.headers["content-type"].startswith("text/html") and "try again" in form.text
