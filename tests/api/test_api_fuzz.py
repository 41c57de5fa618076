"""Property-based fuzzing of every operation the API documents, signed in with every role: whatever
the request, the answer is never a server error.

Hypothesis, through schemathesis, draws requests from the app's own OpenAPI (valid and invalid
bodies, parameters and headers). The requests are drawn first and sent afterwards, on the test's
event loop, where the app's database and Temporal clients live; a 5xx fails with the request to
reproduce it (`as_curl_command`).
"""

from __future__ import annotations

import httpx
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from tests.api.accounts import BASE_URL

EXAMPLES_PER_OPERATION = 12


def drawn_requests(app: FastAPI) -> list:
    cases = []
    schema = schemathesis.openapi.from_dict(app.openapi())
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(operation.as_strategy())
        # Derandomized: the same requests on every run, so that CI's verdict is about the code, not the draw.
        @settings(max_examples=EXAMPLES_PER_OPERATION, database=None, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def draw(case) -> None:
            cases.append(case)

        draw()
    return cases


def as_httpx(case, authorization: str) -> dict:
    """A drawn case as httpx arguments, with our credentials instead of the random ones drawn."""
    arguments = case.as_transport_kwargs(base_url=BASE_URL, headers={"Authorization": authorization})
    arguments.pop("cookies", None)
    body = arguments.pop("data", None)
    if isinstance(body, dict):
        arguments["data"] = body
    elif body is not None:
        arguments["content"] = body if isinstance(body, bytes) else str(body).encode()
    return arguments


async def test_no_request_gets_a_server_error(app: FastAPI, api: httpx.AsyncClient):
    cases = drawn_requests(app)
    # Every failure answered as a server would (500), not raised into the test: all of them are reported.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    documented = {(method.upper(), path) for path, methods in app.openapi()["paths"].items() for method in methods}
    assert {(case.method.upper(), case.path) for case in cases} == documented
    failures = []
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        for case in cases:
            response = await client.request(**as_httpx(case, api.headers["Authorization"]))
            if response.status_code >= 500:
                failures.append(f"{response.status_code} {case.as_curl_command()}\n{response.text[:300]}")
    assert failures == [], f"{len(failures)} server errors, the first:\n" + "\n\n".join(failures[:5])
