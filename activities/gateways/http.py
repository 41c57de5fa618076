"""What every gateway shares: one HTTP client, and what a gateway's failure means for a retry.

A failure the same request would meet again (a refused template, an unknown number, a bad key) is
non-retryable: the touchpoint is recorded failed and the pathway goes on. A failure that may pass
(the gateway unreachable, 5xx, 429, a provider's own "busy" or rate limit) is retried by Temporal.
Only codes and our own words reach the ApplicationError (workflow history): a gateway's text may
echo the number or the message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

# Below the delivery activity's 30 s start-to-close timeout, with room for the database.
GATEWAY_TIMEOUT = httpx.Timeout(15.0)
# How far a signed webhook's timestamp may be from our clock: a captured request replays no later.
SIGNATURE_TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "X-Carepath-Signature"
TIMESTAMP_HEADER = "X-Carepath-Timestamp"


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
        raise refused(gateway, "not JSON", retryable=True) from None
    if not isinstance(answer, dict):
        raise refused(gateway, "not a JSON object", retryable=True)
    return answer


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>", hex: what our webhooks send and what their receipts must carry."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_webhook_headers(secret: str, body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    return {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: webhook_signature(secret, timestamp, body)}


def webhook_signature_valid(secret: str, timestamp: str | None, signature: str | None, body: bytes,
                            now: float | None = None) -> bool:
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs((now if now is not None else time.time()) - int(timestamp)) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    return hmac.compare_digest(webhook_signature(secret, timestamp, body), signature)


def compact_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
