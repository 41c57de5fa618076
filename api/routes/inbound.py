"""Replies patients send to our SMS, pushed by the gateway: public (a gateway has no account), each
verified the way its receipts are (api/routes/receipts.py) before anything is read.

A reply of STOP, 退订, TD or T (any case) withdraws SMS consent for the patients with that phone,
audited as the patient. Other replies are not read by anyone: the messages come from a number no one
answers, and say to call the care team; each is logged, without its number or text.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field, ValidationError

from api.deps import ServicesDep
from api.security import public
from services.consent import is_stop_word, stop_sms_for
from services.gateway_signatures import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    webhook_signature_valid,
)
from services.receipts import record_forged

log = logging.getLogger(__name__)
router = APIRouter(prefix="/inbound", tags=["inbound"], dependencies=[Depends(public)])


class WebhookReply(BaseModel):
    """What the hospital's SMS gateway posts about one reply."""

    sender: str = Field(min_length=1, max_length=40, description="the patient's number, as the network gives it")
    text: str = Field(max_length=1600)


class Taken(BaseModel):
    stopped: int = Field(description="patients whose SMS this reply stopped")


async def _take(services: ServicesDep, request: Request, gateway: str, sender: str, text: str) -> int:
    if not is_stop_word(text):
        log.info("an SMS reply through %s that is not a stop word: not read by anyone", gateway)
        return 0
    async with services.sessions() as session:
        stopped = await stop_sms_for(session, sender, gateway, request.client.host if request.client else None)
    log.info("a STOP reply through %s stopped SMS for %d patients", gateway, stopped)
    return stopped


async def _refuse(services: ServicesDep, request: Request, gateway: str) -> HTTPException:
    async with services.sessions() as session:
        await record_forged(session, gateway, request.client.host if request.client else None, action="sms.reply")
    return HTTPException(status.HTTP_403_FORBIDDEN, "the reply's signature does not verify")


@router.post("/sms/webhook", response_model=Taken, responses={403: {}, 422: {}})
async def sms_webhook_reply(services: ServicesDep, request: Request) -> Taken:
    """A reply from the hospital's SMS gateway, signed like our requests to it."""
    body = await request.body()
    secret = services.settings.SMS_WEBHOOK_SECRET
    if not secret or not webhook_signature_valid(secret.get_secret_value(), request.headers.get(TIMESTAMP_HEADER),
                                                 request.headers.get(SIGNATURE_HEADER), body):
        raise await _refuse(services, request, "sms-webhook")
    try:
        reply = WebhookReply.model_validate_json(body)
    except ValidationError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, error.errors(include_url=False,
                                                                                include_input=False)) from None
    return Taken(stopped=await _take(services, request, "sms-webhook", reply.sender, reply.text))


@router.post("/sms/alibaba", responses={403: {}})
async def alibaba_sms_reply(services: ServicesDep, request: Request,
                            token: Annotated[str, Query(max_length=200)] = "") -> dict[str, Any]:
    """Alibaba Cloud's SmsUp reports (replies, pushed over HTTP as a JSON list, each with phone_number and
    content), to the address with the same secret token as its status reports. Answered the way Alibaba
    expects: code 0 when taken, else it sends again."""
    expected = services.settings.ALIBABA_SMS_REPORT_TOKEN
    if not expected or not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        raise await _refuse(services, request, "sms-alibaba")
    try:
        replies = [(str(reply["phone_number"]), str(reply["content"])) for reply in json.loads(await request.body())]
    except (ValueError, TypeError, KeyError):
        return {"code": 1, "msg": "expected a JSON list of replies, each with phone_number and content"}
    for sender, text in replies:
        await _take(services, request, "sms-alibaba", sender, text)
    return {"code": 0, "msg": "成功"}
