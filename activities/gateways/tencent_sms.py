"""SMS through Tencent Cloud (`SendSms`, API version 2021-01-11, signed with TC3-HMAC-SHA256).

Tencent sends only templates registered with it (TemplateId) under a registered signature (SignName),
for the SMS application (SmsSdkAppId); the pathway's `sms.template_code` is the TemplateId, and its
`sms.params`, in the order written, fill the template's {1}, {2}, .... The answer's SerialNo is the id
Tencent's status reports name. Signed here (fifteen lines from Tencent's signing document) rather than
through tencentcloud-sdk-python, whose client is synchronous and would hold the worker's event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

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

ENDPOINT = "https://sms.tencentcloudapi.com"
GATEWAY = "TencentSms"
SERVICE = "sms"
CONTENT_TYPE = "application/json; charset=utf-8"
# Codes that may pass on a later attempt (Tencent's own failures, rate limits); every other code (a
# template, signature, number or key Tencent refuses, a number's daily limit) would be refused again.
RETRYABLE_PREFIXES = ("InternalError", "RequestLimitExceeded", "ResourceUnavailable")


def tc3_authorization(secret_id: str, secret_key: str, host: str, payload: bytes, timestamp: int) -> str:
    """The Authorization header of a POST of `payload` to `host` at `timestamp`, signed as Tencent's
    TC3-HMAC-SHA256 document says: content-type and host signed, the key derived per day and service."""
    day = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical = "\n".join(["POST", "/", "", f"content-type:{CONTENT_TYPE}\nhost:{host}\n", "content-type;host",
                           hashlib.sha256(payload).hexdigest()])
    scope = f"{day}/{SERVICE}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = f"TC3{secret_key}".encode()
    for part in (day, SERVICE, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders=content-type;host, Signature={signature}"


class TencentSmsChannel:
    def __init__(self, secret_id: str, secret_key: str, sdk_app_id: str, sign_name: str, endpoint: str = ENDPOINT,
                 region: str = "ap-guangzhou"):
        self._secret_id, self._secret_key = secret_id, secret_key
        self._sdk_app_id, self._sign_name, self._endpoint, self._region = sdk_app_id, sign_name, endpoint, region

    async def send(self, recipient: Recipient, message: OutgoingMessage) -> str:
        if not recipient.phone:
            raise ApplicationError("the patient has no phone number", type="NoAddress", non_retryable=True)
        if message.sms is None or not message.sms.template_code:
            raise ApplicationError("Tencent Cloud SMS needs the pathway's sms.template_code for this message",
                                   type="NoSmsTemplate", non_retryable=True)
        payload = json.dumps({
            "PhoneNumberSet": [dialable(recipient.phone)], "SmsSdkAppId": self._sdk_app_id,
            "SignName": self._sign_name, "TemplateId": message.sms.template_code,
            "TemplateParamSet": list(message.sms.params.values()), "SessionContext": message.message_id,
        }, ensure_ascii=False, separators=(",", ":")).encode()
        host = urlsplit(self._endpoint).netloc
        timestamp = int(time.time())
        headers = {"Authorization": tc3_authorization(self._secret_id, self._secret_key, host, payload, timestamp),
                   "Content-Type": CONTENT_TYPE, "Host": host, "X-TC-Action": "SendSms",
                   "X-TC-Timestamp": str(timestamp), "X-TC-Version": "2021-01-11", "X-TC-Region": self._region}
        try:
            async with gateway_client() as client:
                response = await client.post(self._endpoint, content=payload, headers=headers)
        except httpx.HTTPError as error:
            raise unreachable(GATEWAY, error) from None
        if not response.is_success:
            raise http_status_refused(GATEWAY, response)
        answer = json_of(GATEWAY, response).get("Response") or {}
        if "Error" in answer:
            code = str(answer["Error"].get("Code"))
            raise refused(GATEWAY, code, retryable=code.startswith(RETRYABLE_PREFIXES))
        # One number sent, one status: its Code says whether that number's message was taken.
        statuses = answer.get("SendStatusSet") or [{}]
        code = str(statuses[0].get("Code"))
        if code != "Ok" or not statuses[0].get("SerialNo"):
            raise refused(GATEWAY, code, retryable=code.startswith(RETRYABLE_PREFIXES))
        return str(statuses[0]["SerialNo"])
