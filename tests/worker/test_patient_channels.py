"""The settings decide which patient channels a worker offers; incomplete ones are refused at start."""

from __future__ import annotations

import pytest

from activities.channels import EmailChannel, SmtpSettings
from activities.gateways.alibaba_sms import AlibabaSmsChannel
from activities.gateways.tencent_sms import TencentSmsChannel
from activities.gateways.webhooks import PushWebhookChannel, SmsWebhookChannel
from activities.gateways.wechat import WeChatTemplateChannel
from services.settings import Settings, SettingsRefused, load_settings
from worker.channels import patient_channels

EMAIL = EmailChannel(SmtpSettings(host="127.0.0.1", port=1025, sender="carepath@example.test"))


def test_only_email_and_console_without_gateway_settings():
    assert set(patient_channels(Settings(ENVIRONMENT="test"), EMAIL)) == {"email", "console"}


def test_each_configured_gateway_is_a_channel():
    alibaba = Settings(ENVIRONMENT="test", SMS_PROVIDER="alibaba", ALIBABA_SMS_ACCESS_KEY_ID="LTAI5t",
                       ALIBABA_SMS_ACCESS_KEY_SECRET="secret", ALIBABA_SMS_SIGN_NAME="市妇幼",
                       ALIBABA_SMS_REPORT_TOKEN="report-token", WECHAT_APP_ID="wx", WECHAT_APP_SECRET="s",
                       WECHAT_TOKEN="t", PUSH_WEBHOOK_URL="https://app.hospital.test/push", PUSH_WEBHOOK_SECRET="p")
    channels = patient_channels(alibaba, EMAIL)
    assert isinstance(channels["sms"], AlibabaSmsChannel)
    assert isinstance(channels["wechat"], WeChatTemplateChannel)
    assert isinstance(channels["push"], PushWebhookChannel)
    webhook = Settings(ENVIRONMENT="test", SMS_PROVIDER="webhook", SMS_WEBHOOK_URL="https://sms.hospital.test/send",
                       SMS_WEBHOOK_SECRET="s")
    assert isinstance(patient_channels(webhook, EMAIL)["sms"], SmsWebhookChannel)
    tencent = Settings(ENVIRONMENT="test", SMS_PROVIDER="tencent", TENCENT_SMS_SECRET_ID="AKID",
                       TENCENT_SMS_SECRET_KEY="k", TENCENT_SMS_SDK_APP_ID="1400787878", TENCENT_SMS_SIGN_NAME="市妇幼",
                       TENCENT_SMS_REPORT_TOKEN="report-token")
    assert isinstance(patient_channels(tencent, EMAIL)["sms"], TencentSmsChannel)


@pytest.mark.parametrize(("variables", "missing"), [
    ({"CAREPATH_SMS_PROVIDER": "alibaba", "CAREPATH_ALIBABA_SMS_ACCESS_KEY_ID": "LTAI5t"},
     "CAREPATH_ALIBABA_SMS_ACCESS_KEY_SECRET, CAREPATH_ALIBABA_SMS_SIGN_NAME, CAREPATH_ALIBABA_SMS_REPORT_TOKEN"),
    ({"CAREPATH_SMS_PROVIDER": "webhook"}, "CAREPATH_SMS_WEBHOOK_URL, CAREPATH_SMS_WEBHOOK_SECRET"),
    ({"CAREPATH_SMS_PROVIDER": "tencent", "CAREPATH_TENCENT_SMS_SECRET_ID": "AKID"},
     ("CAREPATH_TENCENT_SMS_SECRET_KEY, CAREPATH_TENCENT_SMS_SDK_APP_ID, CAREPATH_TENCENT_SMS_SIGN_NAME, "
      "CAREPATH_TENCENT_SMS_REPORT_TOKEN")),
    ({"CAREPATH_WECHAT_APP_ID": "wx"}, "CAREPATH_WECHAT_APP_SECRET, CAREPATH_WECHAT_TOKEN"),
    ({"CAREPATH_PUSH_WEBHOOK_URL": "https://app.hospital.test/push"}, "CAREPATH_PUSH_WEBHOOK_SECRET"),
])
def test_incomplete_channel_settings_are_refused(monkeypatch, variables: dict, missing: str):
    monkeypatch.setenv("CAREPATH_ENVIRONMENT", "test")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsRefused) as refused:
        load_settings()
    assert f"a patient channel's settings are incomplete: set {missing}" in str(refused.value)
