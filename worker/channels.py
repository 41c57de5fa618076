"""The patient channels the settings configure, by the name pathways give them (`channel:` of a step).

Every channel is built here and only here: a per-channel send rate (`rate: 50/s`, to come) wraps
each one on its way out of patient_channels, a Channel in and a Channel out.
"""

from __future__ import annotations

from functools import partial

from activities.channels import Channel, ConsoleChannel, EmailChannel
from activities.gateways.alibaba_sms import AlibabaSmsChannel
from activities.gateways.tencent_sms import TencentSmsChannel
from activities.gateways.webhooks import PushWebhookChannel, SmsWebhookChannel
from activities.gateways.wechat import WeChatTemplateChannel
from services.gateway_signatures import signed_webhook_headers
from services.settings import Settings


def _secret(value) -> str:
    return value.get_secret_value()


def patient_channels(settings: Settings, email: EmailChannel) -> dict[str, Channel]:
    """Settings are checked complete when read (services/settings.py): what is set here is usable."""
    channels: dict[str, Channel] = {"email": email, "console": ConsoleChannel()}
    if settings.SMS_PROVIDER == "alibaba":
        channels["sms"] = AlibabaSmsChannel(settings.ALIBABA_SMS_ACCESS_KEY_ID,
                                            _secret(settings.ALIBABA_SMS_ACCESS_KEY_SECRET),
                                            settings.ALIBABA_SMS_SIGN_NAME, endpoint=settings.ALIBABA_SMS_ENDPOINT)
    elif settings.SMS_PROVIDER == "tencent":
        channels["sms"] = TencentSmsChannel(settings.TENCENT_SMS_SECRET_ID, _secret(settings.TENCENT_SMS_SECRET_KEY),
                                            settings.TENCENT_SMS_SDK_APP_ID, settings.TENCENT_SMS_SIGN_NAME,
                                            endpoint=settings.TENCENT_SMS_ENDPOINT, region=settings.TENCENT_SMS_REGION)
    elif settings.SMS_PROVIDER == "webhook":
        channels["sms"] = SmsWebhookChannel(settings.SMS_WEBHOOK_URL,
                                            partial(signed_webhook_headers, _secret(settings.SMS_WEBHOOK_SECRET)))
    if settings.WECHAT_APP_ID:
        channels["wechat"] = WeChatTemplateChannel(settings.WECHAT_APP_ID, _secret(settings.WECHAT_APP_SECRET),
                                                   api_base=settings.WECHAT_API_BASE)
    if settings.PUSH_WEBHOOK_URL:
        channels["push"] = PushWebhookChannel(settings.PUSH_WEBHOOK_URL,
                                              partial(signed_webhook_headers, _secret(settings.PUSH_WEBHOOK_SECRET)))
    return channels
