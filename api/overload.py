"""Overload is answered 503 with Retry-After, never 500 and never a long wait.

Two ways an API process is overloaded: more requests than it can serve at once (admitted up to
`MAX_CONCURRENT_REQUESTS`; the next is refused at once, before its body is read, rather than queued
behind the others), and a dependency that cannot keep up with the requests admitted: no database
connection free within `DATABASE_POOL_TIMEOUT_SECONDS` (sqlalchemy.exc.TimeoutError), Temporal not
answering within a call's rpc_timeout, or not reachable. Both are the client's cue to come back a little
later; neither means the request was wrong, nor that nothing happened (an enrollment answered 503 may
exist: repeating it with its Idempotency-Key finds it and makes sure its workflow runs).

Counted per process, as the throttles are: N processes admit N times the limit.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2
# What a Temporal call raises when the server did not answer in time or could not be reached, or
# refused for its own load; any other RPCError is a real answer (NOT_FOUND, ...) and stays the route's.
TEMPORAL_UNAVAILABLE = frozenset({RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE,
                                  RPCStatusCode.RESOURCE_EXHAUSTED})
# The patient's form is a page, not an API: they get a page too, in both of the form's languages.
FORM_PREFIX = "/f/"
FORM_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Please try again in a minute</title></head>
<body><main><h1>Please try again in a minute</h1>
<p>Many people are sending their answers right now. Nothing is lost: please use the same link again in a minute.</p>
<p lang="zh-CN">现在有很多人同时提交回答。您的链接仍然有效：请稍后一分钟再使用同一链接。</p></main></body></html>
"""


def is_overload(error: BaseException) -> bool:
    """A dependency that did not keep up: worth a 503 and a retry, not a 500."""
    if isinstance(error, BaseExceptionGroup):
        return all(is_overload(inner) for inner in error.exceptions)
    if isinstance(error, PoolTimeout | RPCTimeoutOrCancelledError):
        return True
    return isinstance(error, RPCError) and error.status in TEMPORAL_UNAVAILABLE


class Overload:
    """ASGI middleware: admit at most `limit` requests at once; answer 503 with Retry-After when full,
    when a dependency times out under a route (if the route has not started answering yet), and add
    Retry-After to any 503 a route gives without one."""

    def __init__(self, app: ASGIApp, limit: int, retry_after: int = RETRY_AFTER_SECONDS):
        self.app, self.limit, self.retry_after = app, limit, retry_after
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await self._refuse(scope, send, f"the service is busy ({self.limit} requests in progress); "
                                            f"try again in {self.retry_after} seconds")
            return
        self.in_flight += 1
        started = False

        async def answering(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if message["status"] == 503 and not any(name.lower() == b"retry-after"
                                                        for name, _ in message.get("headers", [])):
                    message = {**message, "headers": [*message.get("headers", []), self._retry_after_header]}
            await send(message)

        try:
            await self.app(scope, receive, answering)
        except Exception as error:
            if started or not is_overload(error):
                raise
            log.warning("%s %s answered 503: %s", scope.get("method"), scope.get("path"), _named(error))
            await self._refuse(scope, send, "the service is busy and could not finish this request in time; "
                                            f"try again in {self.retry_after} seconds (a repeated enrollment "
                                            "needs its Idempotency-Key)")
        finally:
            self.in_flight -= 1

    @property
    def _retry_after_header(self) -> tuple[bytes, bytes]:
        return b"retry-after", str(self.retry_after).encode()

    async def _refuse(self, scope: Scope, send: Send, detail: str) -> None:
        if scope.get("path", "").startswith(FORM_PREFIX):
            body, kind = FORM_PAGE.encode(), b"text/html; charset=utf-8"
        else:
            body, kind = json.dumps({"detail": detail}).encode(), b"application/json"
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
                                self._retry_after_header]})
        await send({"type": "http.response.body", "body": body})


def _named(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__name__}: {error}"
