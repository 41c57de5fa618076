"""How the patient channels' gateways and we sign what we send each other: one place for both sides.

Our webhooks (the hospital's SMS gateway, its app push service) carry `X-Carepath-Timestamp` and
`X-Carepath-Signature: sha256=<hex>`, HMAC-SHA256 of "<timestamp>.<body>" with the shared secret; their
receipts come back signed the same way. WeChat signs what it pushes with SHA-1 of its token, timestamp
and nonce. The worker injects `signed_webhook_headers` into the webhook channels; the API verifies receipts.
"""

from __future__ import annotations

import hashlib
import hmac
import time

# How far a signed request's timestamp may be from our clock: a captured one replays no later.
SIGNATURE_TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "X-Carepath-Signature"
TIMESTAMP_HEADER = "X-Carepath-Timestamp"


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>", hex: what our webhooks send and what their receipts must carry."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_webhook_headers(secret: str, body: bytes) -> dict[str, str]:
    """The headers a webhook channel sends with `body` (bound to the secret by the worker)."""
    timestamp = str(int(time.time()))
    return {TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: webhook_signature(secret, timestamp, body)}


def webhook_signature_valid(secret: str, timestamp: str | None, signature: str | None, body: bytes,
                            now: float | None = None) -> bool:
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    return _fresh(timestamp, now) and hmac.compare_digest(webhook_signature(secret, timestamp, body), signature)


def _fresh(timestamp: str, now: float | None) -> bool:
    return abs((now if now is not None else time.time()) - int(timestamp)) <= SIGNATURE_TOLERANCE_SECONDS


def wechat_event_signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's signature on what it pushes to the server (plaintext mode): SHA-1 of the sorted, joined
    token, timestamp and nonce."""
    return hashlib.sha1("".join(sorted((token, timestamp, nonce))).encode()).hexdigest()


def wechat_event_signature_valid(token: str, signature: str | None, timestamp: str | None, nonce: str | None,
                          now: float | None = None) -> bool:
    if not signature or not timestamp or not nonce or not timestamp.isdigit():
        return False
    # WeChat retries an event within seconds; a captured signature replays no later than the tolerance.
    return _fresh(timestamp, now) and hmac.compare_digest(wechat_event_signature(token, timestamp, nonce), signature)
