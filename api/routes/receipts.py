"""Delivery receipts from the patient channels' gateways: public (a gateway has no account), and each
verified the gateway's way before anything is read from it: HMAC-SHA256 of the body for our webhooks,
WeChat's token signature, the secret report address for Alibaba and Tencent Cloud (which sign nothing). A receipt
that does not verify is answered 403, audited, and changes nothing.

A receipt naming a message we do not know (yet: it can overtake the commit that records the gateway's
id) is answered so that the gateway sends it again: 404, or Alibaba's or Tencent's non-zero code.
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any, Literal
from xml.etree import ElementTree

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field, SecretStr, ValidationError

from api.deps import ServicesDep
from api.security import public
from services.gateway_signatures import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    webhook_signature_valid,
    wechat_event_signature_valid,
)
from services.receipts import MAXIMUM_REASON, Receipt, apply_receipts, record_forged

router = APIRouter(prefix="/receipts", tags=["receipts"], dependencies=[Depends(public)])


class WebhookReceipt(BaseModel):
    """What the hospital's SMS gateway or app push service posts about one message."""

    id: str = Field(min_length=1, max_length=200, description="the id the gateway answered, or our message_id")
    status: Literal["delivered", "undelivered"]
    reason: str | None = Field(default=None, max_length=MAXIMUM_REASON)


class Acknowledged(BaseModel):
    applied: int


async def _refuse(services: ServicesDep, request: Request, gateway: str) -> HTTPException:
    async with services.sessions() as session:
        await record_forged(session, gateway, request.client.host if request.client else None)
    return HTTPException(status.HTTP_403_FORBIDDEN, "the receipt's signature does not verify")


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None


async def _webhook_receipt(services: ServicesDep, request: Request, channel: str, secret: str | None) -> Acknowledged:
    body = await request.body()
    gateway = f"{channel}-webhook"
    if not secret or not webhook_signature_valid(secret, request.headers.get(TIMESTAMP_HEADER),
                                                 request.headers.get(SIGNATURE_HEADER), body):
        raise await _refuse(services, request, gateway)
    try:
        receipt = WebhookReceipt.model_validate_json(body)
    except ValidationError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, error.errors(include_url=False,
                                                                                include_input=False)) from None
    async with services.sessions() as session:
        unknown = await apply_receipts(session, channel, [Receipt(receipt.id, receipt.status, receipt.reason)],
                                       request.client.host if request.client else None, gateway)
    if unknown:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {channel} message with id {receipt.id} (yet)")
    return Acknowledged(applied=1)


@router.post("/sms/webhook", response_model=Acknowledged, responses={403: {}, 404: {}})
async def sms_webhook_receipt(services: ServicesDep, request: Request) -> Acknowledged:
    """A status report from the hospital's SMS gateway, signed like our requests to it."""
    return await _webhook_receipt(services, request, "sms", _secret(services.settings.SMS_WEBHOOK_SECRET))


@router.post("/push", response_model=Acknowledged, responses={403: {}, 404: {}})
async def push_receipt(services: ServicesDep, request: Request) -> Acknowledged:
    """A delivery report from the hospital app's push service, signed like our requests to it."""
    return await _webhook_receipt(services, request, "push", _secret(services.settings.PUSH_WEBHOOK_SECRET))


async def _verify_report_token(services: ServicesDep, request: Request, token: str, expected: SecretStr | None,
                               gateway: str) -> None:
    """A provider that signs nothing it pushes is configured with a secret report address: the token is the credential."""
    secret = _secret(expected)
    if not secret or not hmac.compare_digest(token.encode(), secret.encode()):
        raise await _refuse(services, request, gateway)


async def _apply_reports(services: ServicesDep, request: Request, receipts: list[Receipt], gateway: str) -> list[str]:
    async with services.sessions() as session:
        return await apply_receipts(session, "sms", receipts, request.client.host if request.client else None, gateway)


ReportToken = Annotated[str, Query(max_length=200)]


@router.post("/sms/alibaba", responses={403: {}})
async def alibaba_sms_report(services: ServicesDep, request: Request, token: ReportToken = "") -> dict[str, Any]:
    """Alibaba Cloud's SMS status reports (SmsReport, pushed over HTTP as a JSON list): each names the
    BizId SendSms answered. Answered the way Alibaba expects: code 0 when taken, else it sends again."""
    await _verify_report_token(services, request, token, services.settings.ALIBABA_SMS_REPORT_TOKEN, "sms-alibaba")
    try:
        reports = json.loads(await request.body())
        receipts = [Receipt(str(report["biz_id"]), "delivered" if report["success"] else "undelivered",
                            None if report["success"] else f"{report.get('err_code')} {report.get('err_msg') or ''}".strip())
                    for report in reports]
    except (ValueError, TypeError, KeyError):
        return {"code": 1, "msg": "expected a JSON list of reports, each with biz_id and success"}
    if unknown := await _apply_reports(services, request, receipts, "sms-alibaba"):
        return {"code": 1, "msg": f"{len(unknown)} reports name no message of ours yet"}
    return {"code": 0, "msg": "成功"}


@router.post("/sms/tencent", responses={403: {}})
async def tencent_sms_report(services: ServicesDep, request: Request, token: ReportToken = "") -> dict[str, Any]:
    """Tencent Cloud's SMS status callbacks (a JSON list): each names by `sid` the SerialNo SendSms answered,
    `report_status` SUCCESS or FAIL. Answered the way Tencent expects: result 0 when taken, else it sends again."""
    await _verify_report_token(services, request, token, services.settings.TENCENT_SMS_REPORT_TOKEN, "sms-tencent")
    try:
        reports = json.loads(await request.body())
        receipts = [Receipt(str(report["sid"]), "delivered" if report["report_status"] == "SUCCESS" else "undelivered",
                            None if report["report_status"] == "SUCCESS"
                            else f"{report.get('errmsg')} {report.get('description') or ''}".strip())
                    for report in reports]
    except (ValueError, TypeError, KeyError):
        return {"result": 1, "errmsg": "expected a JSON list of reports, each with sid and report_status"}
    if unknown := await _apply_reports(services, request, receipts, "sms-tencent"):
        return {"result": 1, "errmsg": f"{len(unknown)} reports name no message of ours yet"}
    return {"result": 0, "errmsg": "OK"}


WeChatSigned = Annotated[str | None, Query(max_length=100)]


async def _verify_wechat(services: ServicesDep, request: Request, signature: str | None, timestamp: str | None,
                         nonce: str | None) -> None:
    token = _secret(services.settings.WECHAT_TOKEN)
    if not token or not wechat_event_signature_valid(token, signature, timestamp, nonce):
        raise await _refuse(services, request, "wechat")


@router.get("/wechat", response_class=PlainTextResponse, responses={403: {}})
async def wechat_server_check(services: ServicesDep, request: Request, signature: WeChatSigned = None,
                              timestamp: WeChatSigned = None, nonce: WeChatSigned = None,
                              echostr: WeChatSigned = None) -> str:
    """WeChat's check of the server address, when it is set in the Official Account: echo, if signed."""
    await _verify_wechat(services, request, signature, timestamp, nonce)
    return echostr or ""


@router.post("/wechat", response_class=PlainTextResponse, responses={403: {}, 404: {}})
async def wechat_event(services: ServicesDep, request: Request, signature: WeChatSigned = None,
                       timestamp: WeChatSigned = None, nonce: WeChatSigned = None) -> str:
    """Events WeChat pushes (plaintext mode); TEMPLATESENDJOBFINISH reports a template message's fate,
    subscribe_msg_sent_event each subscription notification's. Others (follows, replies) are not ours to
    handle yet: taken and ignored."""
    await _verify_wechat(services, request, signature, timestamp, nonce)
    body = await request.body()
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "an event with a DOCTYPE or entity is not WeChat's")
    try:
        event = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the event is not XML") from None
    receipts = _wechat_receipts(event)
    if not receipts:
        return "success"
    async with services.sessions() as session:
        unknown = await apply_receipts(session, "wechat", receipts, request.client.host if request.client else None,
                                       "wechat")
    if unknown:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no WeChat message with id {', '.join(unknown)} (yet)")
    return "success"


def _wechat_receipts(event: ElementTree.Element) -> list[Receipt]:
    if event.findtext("Event") == "TEMPLATESENDJOBFINISH" and event.findtext("MsgID"):
        outcome = (event.findtext("Status") or "").strip()
        return [Receipt(event.findtext("MsgID").strip(), "delivered" if outcome == "success" else "undelivered",
                        None if outcome == "success" else outcome.removeprefix("failed:").strip() or outcome)]
    receipts = []
    if event.findtext("Event") == "subscribe_msg_sent_event":
        # One List per notification sent; ErrorCode 0 is delivered, any other says why not (ErrorStatus).
        for item in event.iterfind("SubscribeMsgSentEvent/List"):
            msg_id, code = (item.findtext("MsgID") or "").strip(), (item.findtext("ErrorCode") or "").strip()
            if msg_id:
                receipts.append(Receipt(msg_id, "delivered" if code == "0" else "undelivered", None if code == "0"
                                        else (item.findtext("ErrorStatus") or "").strip() or f"error {code}"))
    return receipts
