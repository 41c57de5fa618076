"""What every gateway shares: one HTTP client, and what a gateway's failure means for a retry.

A failure the same request would meet again (a refused template, an unknown number, a bad key) is
non-retryable: the touchpoint is recorded failed and the pathway goes on. A failure that may pass
(the gateway unreachable, 5xx, 429, a provider's own "busy" or rate limit) is retried by Temporal.
Only codes and our own words reach the ApplicationError (workflow history): a gateway's text may
echo the number or the message.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

# Below the delivery activity's 30 s start-to-close timeout, with room for the database.
GATEWAY_TIMEOUT = httpx.Timeout(15.0)


def gateway_client() -> httpx.AsyncClient:
    # Like the team webhooks' client: no proxy or certificate bundle taken from the environment by surprise.
    return httpx.AsyncClient(timeout=GATEWAY_TIMEOUT, trust_env=False)


def dialable(phone: str) -> str:
    """The number as gateways take it: digits, with the leading '+' of an international number."""
    digits = "".join(character for character in phone if character.isdigit())
    return f"+{digits}" if phone.lstrip().startswith("+") else digits


def refused(gateway: str, code: object, *, retryable: bool) -> ApplicationError:
    return ApplicationError(f"{gateway} refused the message (code {code})", type=f"{gateway}Refused",
                            non_retryable=not retryable)


def unreachable(gateway: str, error: Exception) -> ApplicationError:
    return ApplicationError(f"{gateway} unreachable ({type(error).__name__})", type=f"{gateway}Unavailable")


def http_status_refused(gateway: str, response: httpx.Response) -> ApplicationError:
    """5xx and 429 may pass; any other 4xx is our request, which would be refused again."""
    retryable = response.status_code >= 500 or response.status_code == 429
    return refused(gateway, f"HTTP {response.status_code}", retryable=retryable)


def json_of(gateway: str, response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        # A garbled success or a 5xx page (a proxy's, say) may pass; a 4xx page is our request refused.
        raise refused(gateway, f"HTTP {response.status_code}, not JSON",
                      retryable=response.is_success or response.status_code >= 500) from None
    if not isinstance(answer, dict):
        raise refused(gateway, "not a JSON object", retryable=True)
    return answer


def compact_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
