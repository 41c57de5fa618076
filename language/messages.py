"""A message as the patient receives it, in each language and on each channel: the email's subject and
body, the SMS text (or the provider's registered template), the WeChat template message or subscription
notification. Jinja2 texts, rendered at send time in a sandbox (language/templates.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from language.basics import LanguageModel, Locale

FieldName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=32, examples=["first", "keyword1"])]


class SmsTemplate(LanguageModel):
    """The message as an SMS: short, and for a questionnaire with the form's link."""

    text: str = Field(min_length=1, description="the SMS text (Jinja2, like body); sized in segments at validation",
                      examples=["{{ patient.first_name }}, your check-in: {{ link }}"])
    template_code: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="the template registered with the SMS provider, for providers that send only registered "
                    "templates (Alibaba Cloud's TemplateCode); the text is then what the registered one says",
        examples=["SMS_123456789"])
    params: dict[FieldName, str] = Field(
        default_factory=dict, description="the registered template's variables, each a Jinja2 text",
        examples=[{"name": "{{ patient.first_name }}", "link": "{{ link }}"}])


class WeChatTemplate(LanguageModel):
    """The message as a WeChat Official Account template message (模板消息) or subscription notification
    (订阅通知, which the patient agreed to receive); a questionnaire's opens its form."""

    kind: Literal["template", "subscribe"] = Field(
        default="template",
        description="template: a template message (fields first, keyword1, ..., remark); subscribe: a subscription "
                    "notification, whose fields are named by their type (thing1, time2, phrase3, ...) and sized by it "
                    "(a thing at most 20 characters, a phrase 5 Chinese characters, ...)",
        examples=["subscribe"])
    template_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$",
                             description="the template's id in the hospital's Official Account",
                             examples=["ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY"])
    fields: dict[FieldName, str] = Field(
        min_length=1, description="every data field the template declares, each a Jinja2 text",
        examples=[{"first": "{{ patient.first_name }}，您好", "keyword1": "产后随访问卷", "remark": "请点击填写"},
                  {"thing1": "产后随访问卷", "time2": "今天 18:00 前", "thing3": "请点击填写"}])


class MessageTemplate(LanguageModel):
    """The text of one message in one language. Jinja2, rendered in a sandbox."""

    subject: str = Field(min_length=1, description="the subject line (email) or title", examples=["Your check-in"])
    body: str = Field(min_length=1, description="the message text; {{ patient.first_name }} and friends",
                      examples=["Dear {{ patient.first_name }}, ..."])
    sms: SmsTemplate | None = Field(default=None, description="the SMS form of the message; required on channel sms",
                                    examples=[{"text": "{{ patient.first_name }}, your check-in: {{ link }}"}])
    wechat: WeChatTemplate | None = Field(
        default=None, description="the WeChat template message; required on channel wechat",
        examples=[{"template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY", "fields": {"first": "您好"}}])


Templates = Annotated[
    dict[Locale, MessageTemplate],
    Field(description="one template per locale of the pathway", examples=[{"en": {"subject": "Hello", "body": "Hi"}}]),
]
