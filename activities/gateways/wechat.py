"""WeChat Official Account messages to the patient's openid: template messages (模板消息,
`/cgi-bin/message/template/send`) and subscription notifications (订阅通知, `/cgi-bin/message/subscribe/bizsend`,
the Official Account's form of a Mini Program's `subscribe/send`), which go only to a patient who agreed
to receive that template (43101 otherwise: not retried, the patient has to agree first).

The access token (`/cgi-bin/token`) is fetched once and kept until shortly before it expires; one that
WeChat says is invalid or expired (40001, 42001, 40014: another server may have fetched a new one,
which ends ours) is fetched again and the message sent once more. The answer's msgid is what the
receipt (the TEMPLATESENDJOBFINISH or subscribe_msg_sent_event event) names.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from temporalio.exceptions import ApplicationError

from activities.channels import OutgoingMessage, Recipient
from activities.gateways.http import (
    gateway_client,
    http_status_refused,
    json_of,
    refused,
    unreachable,
)

API_BASE = "https://api.weixin.qq.com"
GATEWAY = "WeChat"
TOKEN_REJECTED = frozenset({40001, 40014, 42001})
# -1: WeChat busy; 45009: the account's daily API quota, which resets; 45047: too many messages queued.
RETRYABLE_CODES = frozenset({-1, 45009, 45047})
SEND_PATHS = {"template": "/cgi-bin/message/template/send", "subscribe": "/cgi-bin/message/subscribe/bizsend"}
# A token is fetched again this long before WeChat says it expires, so none expires in flight.
EXPIRY_MARGIN_SECONDS = 300


class WeChatTemplateChannel:
    def __init__(self, app_id: str, app_secret: str, api_base: str = API_BASE):
        self._app_id, self._app_secret, self._api_base = app_id, app_secret, api_base.rstrip("/")
        self._token: str | None = None
        self._token_expires = 0.0
        # One fetch at a time: concurrent deliveries share the token instead of ending each other's.
        self._token_lock = asyncio.Lock()

    async def send(self, recipient: Recipient, message: OutgoingMessage) -> str | None:
        if not recipient.wechat_openid:
            raise ApplicationError("the patient has no WeChat openid", type="NoAddress", non_retryable=True)
        if message.wechat is None:
            raise ApplicationError("the pathway gives no WeChat form of this message", type="NoWeChatTemplate",
                                   non_retryable=True)
        wechat = message.wechat
        payload = {"touser": recipient.wechat_openid, "template_id": wechat.template_id,
                   "data": {name: {"value": value} for name, value in wechat.fields.items()}}
        if wechat.url:
            # Where tapping the message leads: a template message's `url`, a subscription notification's `page`.
            payload["url" if wechat.kind == "template" else "page"] = wechat.url
        path = SEND_PATHS[wechat.kind]
        async with gateway_client() as client:
            token = await self._access_token(client)
            answer = await self._post(client, path, token, payload)
            if answer.get("errcode") in TOKEN_REJECTED:
                token = await self._access_token(client, rejected=token)
                answer = await self._post(client, path, token, payload)
        code = answer.get("errcode", 0)
        if code != 0 or ("msgid" not in answer and wechat.kind == "template"):
            raise refused(GATEWAY, code, retryable=code in RETRYABLE_CODES or code in TOKEN_REJECTED)
        # WeChat documents no msgid in a subscription notification's answer, though it gives one: without
        # it, no receipt can name the message, and it stays `sent`.
        return str(answer["msgid"]) if "msgid" in answer else None

    async def _post(self, client: httpx.AsyncClient, path: str, token: str, payload: dict) -> dict:
        return await self._call(client, "POST", path, params={"access_token": token}, json=payload)

    async def _access_token(self, client: httpx.AsyncClient, rejected: str | None = None) -> str:
        async with self._token_lock:
            # Another delivery may have fetched a fresh one while this one waited for the lock.
            if self._token and self._token != rejected and time.monotonic() < self._token_expires:
                return self._token
            answer = await self._call(client, "GET", "/cgi-bin/token", params={
                "grant_type": "client_credential", "appid": self._app_id, "secret": self._app_secret})
            if "access_token" not in answer:
                code = answer.get("errcode")
                raise refused(GATEWAY, f"token {code}", retryable=code in RETRYABLE_CODES)
            self._token = str(answer["access_token"])
            self._token_expires = time.monotonic() + int(answer.get("expires_in", 7200)) - EXPIRY_MARGIN_SECONDS
            return self._token

    async def _call(self, client: httpx.AsyncClient, method: str, path: str, **request) -> dict:
        try:
            response = await client.request(method, f"{self._api_base}{path}", **request)
        except httpx.HTTPError as error:
            raise unreachable(GATEWAY, error) from None
        if not response.is_success:
            raise http_status_refused(GATEWAY, response)
        return json_of(GATEWAY, response)

