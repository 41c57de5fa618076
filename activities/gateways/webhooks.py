"""The hospital's own gateways, as signed JSON webhooks: SMS (its SMS service) and app push.

POST <url> with a JSON body, `X-Carepath-Timestamp` and `X-Carepath-Signature: sha256=<hex>` (HMAC-SHA256
of "<timestamp>.<body>" with the shared secret). The gateway answers 2xx, optionally {"id": "..."}: its
id for the message; otherwise our message id stands, and its receipts name that one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx
from temporalio.exceptions import ApplicationError

from activities.channels import OutgoingMessage, Recipient
from activities.gateways.http import (
    compact_json,
    dialable,
    gateway_client,
    http_status_refused,
    json_of,
    unreachable,
)

# The headers that sign a body (services/gateway_signatures.py, bound to the gateway's secret by the worker).
Signer = Callable[[bytes], Mapping[str, str]]


async def post_signed(gateway: str, url: str, sign: Signer, payload: dict, message: OutgoingMessage) -> str:
    body = compact_json(payload)
    try:
        async with gateway_client() as client:
            response = await client.post(url, content=body, headers={**sign(body), "Content-Type": "application/json"})
    except httpx.HTTPError as error:
        raise unreachable(gateway, error) from None
    if not response.is_success:
        raise http_status_refused(gateway, response)
    if not response.content:
        return message.message_id
    provider_id = json_of(gateway, response).get("id")
    return str(provider_id) if provider_id else message.message_id


class SmsWebhookChannel:
    """SMS through the hospital's own gateway: it gets the number and the short text."""

    def __init__(self, url: str, sign: Signer):
        self._url, self._sign = url, sign

    async def send(self, recipient: Recipient, message: OutgoingMessage) -> str:
        if not recipient.phone:
            raise ApplicationError("the patient has no phone number", type="NoAddress", non_retryable=True)
        if message.sms is None:
            raise ApplicationError("the pathway gives no SMS text for this message", type="NoSmsTemplate",
                                   non_retryable=True)
        payload = {"message_id": message.message_id, "to": dialable(recipient.phone), "text": message.sms.text}
        return await post_signed("SmsGateway", self._url, self._sign, payload, message)


class PushWebhookChannel:
    """App push through the hospital app's backend, which knows the patient by hospital number."""

    def __init__(self, url: str, sign: Signer):
        self._url, self._sign = url, sign

    async def send(self, recipient: Recipient, message: OutgoingMessage) -> str:
        if not recipient.hospital_number:
            raise ApplicationError("the patient has no hospital number for the app to know them by",
                                   type="NoAddress", non_retryable=True)
        payload = {"message_id": message.message_id, "hospital_number": recipient.hospital_number,
                   "title": message.subject, "body": message.body}
        return await post_signed("PushGateway", self._url, self._sign, payload, message)
