"""Channels carry a rendered message to a patient. New gateways (SMS, app push) implement Channel."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
from temporalio.exceptions import ApplicationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipient:
    email: str | None
    phone: str | None
    wechat_openid: str | None = None
    # What the hospital's systems (its app's push service among them) know the patient by.
    hospital_number: str | None = None


@dataclass(frozen=True)
class OutgoingMessage:
    subject: str
    body: str
    # Stable per (enrollment, step, occurrence): a receiving system can drop a resend as a duplicate.
    message_id: str
    # The pathway's short text and registered template for SMS, and its template for WeChat, rendered;
    # None where the pathway gives none (email and push send subject and body).
    sms: SmsContent | None = None
    wechat: WeChatContent | None = None


@dataclass(frozen=True)
class SmsContent:
    text: str
    # A provider that sends only registered templates (Alibaba Cloud) takes their code and parameters.
    template_code: str | None = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WeChatContent:
    template_id: str
    fields: dict[str, str]
    url: str | None = None


class Channel(Protocol):
    async def send(self, recipient: Recipient, message: OutgoingMessage) -> str | None:
        """Hand the message over; returns the gateway's id for it when its delivery receipts name one."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False


class EmailChannel:
    def __init__(self, smtp: SmtpSettings):
        self._smtp = smtp

    async def send(self, recipient: Recipient, message: OutgoingMessage) -> None:
        if not recipient.email:
            raise ApplicationError("the patient has no email address", type="NoAddress", non_retryable=True)
        email = EmailMessage()
        email["From"] = self._smtp.sender
        email["To"] = recipient.email
        # One line whatever the text: a line break in a header raises, and a retry would raise again.
        email["Subject"] = " ".join(message.subject.split())
        email["Message-ID"] = message.message_id
        email.set_content(message.body)
        try:
            await aiosmtplib.send(
                email, hostname=self._smtp.host, port=self._smtp.port, username=self._smtp.username,
                password=self._smtp.password, start_tls=self._smtp.starttls, timeout=20,
            )
        except aiosmtplib.SMTPResponseException as error:
            # The server's text may echo the address; only the code goes into workflow history.
            raise ApplicationError(f"SMTP server refused the message (code {error.code})", type="SmtpRefused",
                                   non_retryable=500 <= error.code < 600) from None
        except (aiosmtplib.SMTPException, OSError) as error:
            raise ApplicationError(f"SMTP server unreachable ({type(error).__name__})", type="SmtpUnavailable") from None


class ConsoleChannel:
    """For development and demonstrations: the message goes to the worker's log."""

    async def send(self, recipient: Recipient, message: OutgoingMessage) -> None:
        log.info("console message %s: %s\n%s", message.message_id, message.subject, message.body)
