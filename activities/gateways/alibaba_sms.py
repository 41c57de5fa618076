"""SMS through Alibaba Cloud (dysmsapi `SendSms`, API version 2017-05-25, RPC signature v1).

Alibaba sends only templates registered with it (TemplateCode) under a registered signature (SignName),
filled with TemplateParam; the pathway's `sms.template_code` and `sms.params` say which and with what.
The answer's BizId is the id its status reports (receipts) name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
from temporalio.exceptions import ApplicationError

from activities.channels import OutgoingMessage, Recipient
from activities.gateways.http import (
    dialable,
    gateway_client,
    http_status_refused,
    json_of,
    refused,
    unreachable,
)

ENDPOINT = "https://dysmsapi.aliyuncs.com/"
GATEWAY = "AlibabaSms"
# Codes that may pass on a later attempt (rate limits, the service's own failures); every other code
# (a template, signature, number or key Alibaba refuses) would be refused again.
RETRYABLE_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "Throttling", "Throttling.User", "Throttling.Api",
                             "ServiceUnavailable", "InternalError", "isp.SYSTEM_ERROR"})


def percent_encode(text: str) -> str:
    """Alibaba's POP encoding: RFC 3986, space as %20, '*' as %2A, '~' left alone."""
    return quote(text, safe="~")


def signature(secret: str, method: str, params: dict[str, str]) -> str:
    canonical = "&".join(f"{percent_encode(key)}={percent_encode(params[key])}" for key in sorted(params))
    string_to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class AlibabaSmsChannel:
    def __init__(self, access_key_id: str, access_key_secret: str, sign_name: str, endpoint: str = ENDPOINT,
                 region: str = "cn-hangzhou"):
        self._key_id, self._secret = access_key_id, access_key_secret
        self._sign_name, self._endpoint, self._region = sign_name, endpoint, region

    async def send(self, recipient: Recipient, message: OutgoingMessage) -> str:
        if not recipient.phone:
            raise ApplicationError("the patient has no phone number", type="NoAddress", non_retryable=True)
        if message.sms is None or not message.sms.template_code:
            raise ApplicationError("Alibaba Cloud SMS needs the pathway's sms.template_code for this message",
                                   type="NoSmsTemplate", non_retryable=True)
        params = {
            "AccessKeyId": self._key_id, "Action": "SendSms", "Format": "JSON", "RegionId": self._region,
            "SignatureMethod": "HMAC-SHA1", "SignatureNonce": uuid.uuid4().hex, "SignatureVersion": "1.0",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "Version": "2017-05-25",
            # Alibaba takes mainland numbers with or without 86, others with their country code, no '+'.
            "PhoneNumbers": dialable(recipient.phone).removeprefix("+"), "SignName": self._sign_name,
            "TemplateCode": message.sms.template_code,
            "TemplateParam": json.dumps(message.sms.params, ensure_ascii=False, separators=(",", ":")),
            "OutId": message.message_id[:64],
        }
        params["Signature"] = signature(self._secret, "GET", params)
        try:
            async with gateway_client() as client:
                response = await client.get(self._endpoint, params=params)
        except httpx.HTTPError as error:
            raise unreachable(GATEWAY, error) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise http_status_refused(GATEWAY, response)
        # Alibaba answers its refusals (a bad signature, template or number) as 4xx with a JSON Code.
        answer = json_of(GATEWAY, response)
        code = answer.get("Code")
        if code != "OK" or not answer.get("BizId"):
            raise refused(GATEWAY, code, retryable=code in RETRYABLE_CODES)
        return str(answer["BizId"])
