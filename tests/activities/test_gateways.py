"""Each patient channel end to end: the real DeliveryActivities on a real database, sending over real HTTP
to a local server that speaks the gateway's protocol (tests/activities/gateway_servers.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.delivery import DeliveryActivities
from activities.gateways.alibaba_sms import AlibabaSmsChannel
from activities.gateways.tencent_sms import TencentSmsChannel
from activities.gateways.webhooks import PushWebhookChannel, SmsWebhookChannel
from activities.gateways.wechat import WeChatTemplateChannel
from language.messages import SmsTemplate, WeChatTemplate
from services.gateway_signatures import signed_webhook_headers
from store.db import Enrollment, Patient, TouchpointRecord, utcnow
from tests.activities.gateway_servers import (
    AlibabaSms,
    SignedWebhook,
    TencentSms,
    WeChat,
)
from workflows.contracts import FormLink, MessageDelivery, MessageTemplate

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
TEMPLATE_ID = "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY"
SECRET = "a-shared-secret-of-the-hospital-gateway"


class Links:
    def url(self, enrollment_id, step_id, occurrence, expires) -> str:
        return f"https://carepath.example/f/{enrollment_id}.{step_id}.{occurrence}"


@pytest.fixture
async def sessions(database):
    async with database.begin() as session:
        session.add(Patient(id="pt_1", hospital_number="MRN-0042", given_name="伟", family_name="李",
                            phone="+86 138 0013 8000", wechat_openid=OPENID, locale="zh-CN", timezone="Asia/Shanghai"))
        await session.flush()
        session.add(Enrollment(id="en_1", patient_id="pt_1", pathway_id="p", pathway_version=1, anchor=utcnow(),
                               timezone="Asia/Shanghai", request_fingerprint="x"))
    return database


TEMPLATE = MessageTemplate(
    subject="近况问卷", body="请填写：{{ link }}",
    sms=SmsTemplate(text="{{ patient.first_name }}，请填写问卷：{{ link }}", template_code="SMS_150575871",
                    params={"name": "{{ patient.first_name }}", "link": "{{ link }}"}),
    wechat=WeChatTemplate(template_id=TEMPLATE_ID, fields={"first": "{{ patient.first_name }}，您好",
                                                            "keyword1": "{{ pathway.title }}"}))


def request(channel: str, step_id: str = "check-in") -> MessageDelivery:
    return MessageDelivery(enrollment_id="en_1", pathway_id="p", pathway_title="产后随访", step_id=step_id,
                           occurrence=1, channel=channel, due=utcnow(), templates={"zh-CN": TEMPLATE},
                           form=FormLink(instrument_id="phq-9", expires=utcnow() + timedelta(days=3)))


async def deliver(sessions, channel_name: str, channel, step_id: str = "check-in") -> TouchpointRecord:
    activities = DeliveryActivities(sessions, {channel_name: channel}, Links())
    try:
        await ActivityEnvironment().run(activities.deliver_message, request(channel_name, step_id))
    finally:
        async with sessions() as session:
            stored = await session.scalar(select(TouchpointRecord).where(TouchpointRecord.step_id == step_id))
    return stored


LINK = "https://carepath.example/f/en_1.check-in.1"


async def test_sms_through_alibaba_cloud(sessions):
    with AlibabaSms("LTAI5tKey", "alibaba-secret", {"SMS_150575871"}, "市妇幼") as alibaba:
        channel = AlibabaSmsChannel("LTAI5tKey", "alibaba-secret", "市妇幼", endpoint=alibaba.url + "/")
        stored = await deliver(sessions, "sms", channel)
    [sent] = alibaba.requests
    assert (sent["PhoneNumbers"], sent["TemplateCode"], sent["SignName"]) == ("8613800138000", "SMS_150575871", "市妇幼")
    assert json.loads(sent["TemplateParam"]) == {"name": "伟", "link": LINK}
    assert (stored.status, stored.provider_message_id) == ("sent", "900619746936498440^0")


async def test_alibaba_refusing_the_template_is_not_retried(sessions):
    with AlibabaSms("LTAI5tKey", "alibaba-secret", {"SMS_OTHER"}, "市妇幼") as alibaba:
        channel = AlibabaSmsChannel("LTAI5tKey", "alibaba-secret", "市妇幼", endpoint=alibaba.url + "/")
        with pytest.raises(ApplicationError) as refused:
            await deliver(sessions, "sms", channel)
    assert refused.value.non_retryable and "isv.SMS_TEMPLATE_ILLEGAL" in refused.value.message
    # Only the code reaches the error (and workflow history): not Alibaba's words, nor the number.
    assert "模板" not in refused.value.message and "138" not in refused.value.message
    async with sessions() as session:
        stored = await session.scalar(select(TouchpointRecord))
    assert (stored.status, stored.provider_message_id) == ("failed", None)


async def test_alibaba_checks_our_signature(sessions):
    with AlibabaSms("LTAI5tKey", "the-real-secret", {"SMS_150575871"}, "市妇幼") as alibaba:
        channel = AlibabaSmsChannel("LTAI5tKey", "a-wrong-secret", "市妇幼", endpoint=alibaba.url + "/")
        with pytest.raises(ApplicationError) as refused:
            await deliver(sessions, "sms", channel)
    assert refused.value.non_retryable and "SignatureDoesNotMatch" in refused.value.message


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_an_alibaba_outage_is_retried(sessions, status: int):
    with AlibabaSms("LTAI5tKey", "alibaba-secret", {"SMS_150575871"}, "市妇幼") as alibaba:
        alibaba.failures.append((status, {"Code": "ServiceUnavailable"}))
        channel = AlibabaSmsChannel("LTAI5tKey", "alibaba-secret", "市妇幼", endpoint=alibaba.url + "/")
        with pytest.raises(ApplicationError) as failed:
            await deliver(sessions, "sms", channel)
        assert not failed.value.non_retryable
        # Temporal's next attempt: the lease of the failed one is over, and this one goes.
        assert (await deliver(sessions, "sms", channel)).status == "sent"


async def test_an_unreachable_gateway_is_retried(sessions):
    with AlibabaSms("LTAI5tKey", "alibaba-secret", {"SMS_150575871"}, "市妇幼") as alibaba:
        closed = alibaba.url
    channel = AlibabaSmsChannel("LTAI5tKey", "alibaba-secret", "市妇幼", endpoint=closed + "/")
    with pytest.raises(ApplicationError) as failed:
        await deliver(sessions, "sms", channel)
    assert not failed.value.non_retryable and failed.value.type == "AlibabaSmsUnavailable"


def tencent(gateway: TencentSms, secret_key: str = "tencent-secret-key") -> TencentSmsChannel:
    return TencentSmsChannel("AKIDtencent", secret_key, "1400787878", "市妇幼", endpoint=gateway.url)


async def test_sms_through_tencent_cloud(sessions):
    with TencentSms("AKIDtencent", "tencent-secret-key", "1400787878", "市妇幼", {"SMS_150575871"}) as gateway:
        stored = await deliver(sessions, "sms", tencent(gateway))
    [sent] = gateway.requests
    assert (sent["PhoneNumberSet"], sent["TemplateId"], sent["SignName"], sent["SmsSdkAppId"]) == (
        ["+8613800138000"], "SMS_150575871", "市妇幼", "1400787878")
    # The template's {1} and {2}, in the order the pathway gives its params.
    assert sent["TemplateParamSet"] == ["伟", LINK]
    assert sent["headers"]["X-TC-Action"] == "SendSms" and sent["headers"]["X-TC-Region"] == "ap-guangzhou"
    assert (stored.status, stored.provider_message_id) == ("sent", "5000:1045710669157053657849499619")


async def test_tencent_checks_our_signature_and_refuses_for_good(sessions):
    with TencentSms("AKIDtencent", "the-real-key", "1400787878", "市妇幼", {"SMS_150575871"}) as gateway, \
            pytest.raises(ApplicationError) as forged:
        await deliver(sessions, "sms", tencent(gateway, secret_key="a-wrong-key"))
    assert forged.value.non_retryable and "AuthFailure.SignatureFailure" in forged.value.message
    with TencentSms("AKIDtencent", "tencent-secret-key", "1400787878", "市妇幼", {"SMS_OTHER"}) as gateway, \
            pytest.raises(ApplicationError) as unapproved:
        await deliver(sessions, "sms", tencent(gateway), step_id="second")
    assert unapproved.value.non_retryable and "TemplateIncorrectOrUnapproved" in unapproved.value.message
    # Only the code reaches the error (and workflow history): not Tencent's words, nor the number.
    assert "模板" not in unapproved.value.message and "138" not in unapproved.value.message


async def test_tencent_being_busy_is_retried(sessions):
    with TencentSms("AKIDtencent", "tencent-secret-key", "1400787878", "市妇幼", {"SMS_150575871"}) as gateway:
        gateway.failures.append((200, {"Response": {"Error": {"Code": "InternalError.Timeout", "Message": "busy"},
                                                    "RequestId": "x"}}))
        with pytest.raises(ApplicationError) as busy:
            await deliver(sessions, "sms", tencent(gateway))
        assert not busy.value.non_retryable
        assert (await deliver(sessions, "sms", tencent(gateway))).status == "sent"


async def test_wechat_template_message_opens_the_form(sessions):
    with WeChat("wx-app", "wx-secret", {TEMPLATE_ID}, {OPENID}) as wechat:
        channel = WeChatTemplateChannel("wx-app", "wx-secret", api_base=wechat.url)
        stored = await deliver(sessions, "wechat", channel)
        await deliver(sessions, "wechat", channel, step_id="second")
    first, second = wechat.requests
    assert first["touser"] == OPENID and first["template_id"] == TEMPLATE_ID and first["url"] == LINK
    assert first["data"] == {"first": {"value": "伟，您好"}, "keyword1": {"value": "产后随访"}}
    assert (stored.status, stored.provider_message_id) == ("sent", "200228332")
    # The token is kept until it expires: one fetch for both messages.
    assert wechat.tokens_issued == 1 and second["access_token"] == first["access_token"]


async def test_an_expired_wechat_token_is_fetched_again(sessions):
    with WeChat("wx-app", "wx-secret", {TEMPLATE_ID}, {OPENID}) as wechat:
        channel = WeChatTemplateChannel("wx-app", "wx-secret", api_base=wechat.url)
        await deliver(sessions, "wechat", channel)
        wechat.expire_token()  # another server fetched one, or its two hours are up
        stored = await deliver(sessions, "wechat", channel, step_id="second")
    assert stored.status == "sent" and wechat.tokens_issued == 2
    assert [sent["access_token"] for sent in wechat.requests] == ["token-1", "token-1", "token-2"]


async def test_wechat_refusals(sessions):
    with WeChat("wx-app", "wx-secret", {"another-template"}, {OPENID}) as wechat:
        channel = WeChatTemplateChannel("wx-app", "wx-secret", api_base=wechat.url)
        with pytest.raises(ApplicationError) as refused:
            await deliver(sessions, "wechat", channel)
        assert refused.value.non_retryable and "40037" in refused.value.message
        wechat.failures.append((200, {"errcode": -1, "errmsg": "system error"}))
        with pytest.raises(ApplicationError) as busy:
            await deliver(sessions, "wechat", channel, step_id="second")
        assert not busy.value.non_retryable
    with WeChat("wx-app", "wx-secret", {TEMPLATE_ID}, {OPENID}) as wechat:
        channel = WeChatTemplateChannel("wx-app", "a-wrong-secret", api_base=wechat.url)
        with pytest.raises(ApplicationError) as bad_secret:
            await deliver(sessions, "wechat", channel, step_id="third")
    assert bad_secret.value.non_retryable and "token 40001" in bad_secret.value.message


SUBSCRIBE_TEMPLATE_ID = "bDmywsp2oEHjwAadTGKkUHpC0RgBVPvfAKyDIZ5gXhE"
SUBSCRIBED = MessageTemplate(
    subject="近况问卷", body="请填写：{{ link }}",
    wechat=WeChatTemplate(kind="subscribe", template_id=SUBSCRIBE_TEMPLATE_ID,
                          fields={"thing1": "{{ pathway.title }}问卷", "name2": "{{ patient.first_name }}",
                                  "thing3": "点击填写，约需三分钟"}))


async def deliver_subscribed(sessions, channel, step_id: str = "check-in") -> TouchpointRecord:
    activities = DeliveryActivities(sessions, {"wechat": channel}, Links())
    try:
        await ActivityEnvironment().run(activities.deliver_message, request("wechat", step_id).model_copy(
            update={"templates": {"zh-CN": SUBSCRIBED}}))
    finally:
        async with sessions() as session:
            stored = await session.scalar(select(TouchpointRecord).where(TouchpointRecord.step_id == step_id))
    return stored


async def test_a_wechat_subscription_notification_goes_to_a_patient_who_agreed_and_opens_the_form(sessions):
    with WeChat("wx-app", "wx-secret", set(), set(), subscriptions={(OPENID, SUBSCRIBE_TEMPLATE_ID)}) as wechat:
        channel = WeChatTemplateChannel("wx-app", "wx-secret", api_base=wechat.url)
        stored = await deliver_subscribed(sessions, channel)
    [sent] = wechat.requests
    assert sent["path"] == "/cgi-bin/message/subscribe/bizsend" and sent["access_token"] == "token-1"
    assert (sent["touser"], sent["template_id"], sent["page"]) == (OPENID, SUBSCRIBE_TEMPLATE_ID, LINK)
    assert sent["data"] == {"thing1": {"value": "产后随访问卷"}, "name2": {"value": "伟"},
                            "thing3": {"value": "点击填写，约需三分钟"}}
    assert (stored.status, stored.provider_message_id) == ("sent", "200228332")


async def test_a_patient_who_did_not_agree_refuses_a_subscription_notification_for_good(sessions):
    with WeChat("wx-app", "wx-secret", {SUBSCRIBE_TEMPLATE_ID}, {OPENID}) as wechat:
        channel = WeChatTemplateChannel("wx-app", "wx-secret", api_base=wechat.url)
        with pytest.raises(ApplicationError) as refused:
            await deliver_subscribed(sessions, channel)
    assert refused.value.non_retryable and "43101" in refused.value.message
    async with sessions() as session:
        assert (await session.scalar(select(TouchpointRecord))).status == "failed"


async def test_wechat_refuses_a_subscription_field_longer_than_its_type_allows(sessions):
    """What validation prevents for the pathway's own words (language/channel_checks.py), a long
    pathway title can still cause at send time: WeChat's 47003, not retried."""
    long_title = request("wechat").model_copy(update={"templates": {"zh-CN": SUBSCRIBED},
                                                      "pathway_title": "产后四十二天母婴健康随访计划第二阶段（线上）"})
    with WeChat("wx-app", "wx-secret", set(), set(), subscriptions={(OPENID, SUBSCRIBE_TEMPLATE_ID)}) as wechat:
        activities = DeliveryActivities(sessions, {"wechat": WeChatTemplateChannel("wx-app", "wx-secret",
                                                                                   api_base=wechat.url)}, Links())
        with pytest.raises(ApplicationError) as refused:
            await ActivityEnvironment().run(activities.deliver_message, long_title)
    assert refused.value.non_retryable and "47003" in refused.value.message


async def test_sms_through_the_hospital_gateway(sessions):
    with SignedWebhook(SECRET, answer_id=lambda payload: "gw-7781") as gateway:
        channel = SmsWebhookChannel(gateway.url + "/sms", partial(signed_webhook_headers, SECRET))
        stored = await deliver(sessions, "sms", channel)
    [sent] = gateway.requests
    assert sent == {"message_id": "<en_1.check-in.1.scheduled@carepath>", "to": "+8613800138000",
                    "text": f"伟，请填写问卷：{LINK}"}
    assert (stored.status, stored.provider_message_id) == ("sent", "gw-7781")


async def test_a_gateway_that_does_not_know_our_secret_refuses(sessions):
    with SignedWebhook("the-gateway-secret") as gateway:
        channel = SmsWebhookChannel(gateway.url + "/sms", partial(signed_webhook_headers, "not-the-secret"))
        with pytest.raises(ApplicationError) as refused:
            await deliver(sessions, "sms", channel)
    assert refused.value.non_retryable and "HTTP 401" in refused.value.message and gateway.requests == []


async def test_app_push_through_the_hospital_app(sessions):
    with SignedWebhook(SECRET) as gateway:
        channel = PushWebhookChannel(gateway.url + "/push", partial(signed_webhook_headers, SECRET))
        stored = await deliver(sessions, "push", channel)
        gateway.failures.append((502, {}))
        with pytest.raises(ApplicationError) as failed:
            await deliver(sessions, "push", channel, step_id="second")
    assert gateway.requests[0] == {"message_id": "<en_1.check-in.1.scheduled@carepath>",
                                   "hospital_number": "MRN-0042", "title": "近况问卷", "body": f"请填写：{LINK}"}
    # Without an id of its own in the answer, its receipts name ours.
    assert (stored.status, stored.provider_message_id) == ("sent", "<en_1.check-in.1.scheduled@carepath>")
    assert not failed.value.non_retryable
