"""Channels carry a rendered message to a patient. New gateways (SMS, app push) implement Channel."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as email_policy
from typing import Literal, Protocol

import aiosmtplib
from limits import RateLimitItem
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
    # The patient's own link to stop this channel, shown at the foot of an email and in its headers.
    unsubscribe: Unsubscribe | None = None


@dataclass(frozen=True)
class Unsubscribe:
    url: str
    # The line at the foot of the message, in the patient's language, naming the url.
    footer: str


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
    # A template message, or a subscription notification (language/model.py WeChatTemplate.kind).
    kind: Literal["template", "subscribe"] = "template"


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
    # Connections kept open and reused: a new one per message (TCP, greeting, EHLO, STARTTLS, AUTH)
    # cost more worker CPU and time than the message itself.
    connections: int = 8
    # A connection idle longer is closed rather than reused: servers drop idle clients (RFC 5321
    # allows them to after 5 minutes), and a send on a dropped connection would fail an attempt.
    idle_seconds: float = 30.0


class SmtpConnections:
    """Up to `connections` open SMTP sessions, each used by one send at a time."""

    def __init__(self, smtp: SmtpSettings):
        self._smtp = smtp
        self._slots = asyncio.Semaphore(smtp.connections)
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []

    async def send(self, email: EmailMessage) -> None:
        async with self._slots:
            kept = self._idle_connection()
            client = kept or await self._connect()
            try:
                await self._send_on(client, email)
            except aiosmtplib.SMTPServerDisconnected:
                if kept is None:
                    raise
                # A kept connection the server has closed since (idle timeout, restart), noticed only now
                # that it is used: the message goes on a new one.
                client = await self._connect()
                await self._send_on(client, email)
            self._idle.append((client, time.monotonic()))

    @staticmethod
    async def _send_on(client: aiosmtplib.SMTP, email: EmailMessage) -> None:
        try:
            await client.send_message(email)
        except BaseException:
            # Its state is unknown (half a transaction, a dropped socket): never reused.
            client.close()
            raise

    def _idle_connection(self) -> aiosmtplib.SMTP | None:
        while self._idle:
            client, since = self._idle.pop()
            if client.is_connected and time.monotonic() - since < self._smtp.idle_seconds:
                return client
            client.close()
        return None

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(hostname=self._smtp.host, port=self._smtp.port, username=self._smtp.username,
                                 password=self._smtp.password, start_tls=self._smtp.starttls, timeout=20)
        await client.connect()
        return client


class EmailChannel:
    def __init__(self, smtp: SmtpSettings):
        self._smtp = smtp
        self._connections = SmtpConnections(smtp)
        # The headers every message carries alike, parsed once: the email package's header parsing is most of
        # what composing a message costs the worker, and a parsed header is stored as it is.
        self._from = email_policy.header_factory("From", smtp.sender)
        self._one_click = email_policy.header_factory("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")

    async def send(self, recipient: Recipient, message: OutgoingMessage) -> None:
        if not recipient.email:
            raise ApplicationError("the patient has no email address", type="NoAddress", non_retryable=True)
        email = EmailMessage()
        email["From"] = self._from
        email["To"] = recipient.email
        # One line whatever the text: a line break in a header raises, and a retry would raise again.
        email["Subject"] = " ".join(message.subject.split())
        email["Message-ID"] = message.message_id
        body = message.body
        if message.unsubscribe:
            # RFC 8058: a mail client's own "unsubscribe" button POSTs to the link, which stops the emails
            # at once; the link opened in a browser (or by a mail scanner) only asks to confirm.
            email["List-Unsubscribe"] = f"<{message.unsubscribe.url}>"
            email["List-Unsubscribe-Post"] = self._one_click
            body = f"{body.rstrip()}\n\n-- \n{message.unsubscribe.footer}\n"
        email.set_content(body)
        try:
            await self._connections.send(email)
        except aiosmtplib.SMTPResponseException as error:
            # The server's text may echo the address; only the code goes into workflow history.
            raise ApplicationError(f"SMTP server refused the message (code {error.code})", type="SmtpRefused",
                                   non_retryable=500 <= error.code < 600) from None
        except (aiosmtplib.SMTPException, OSError) as error:
            raise ApplicationError(f"SMTP server unreachable ({type(error).__name__})", type="SmtpUnavailable") from None


class RateLimitedChannel:
    """A gateway's limit (`50/second`): never more messages than that reach it in any window of that length.

    A message reaches the gateway some time between its send's start and its end, so a send counts
    against the window from the moment it starts until a window's length after it ends. Counting only
    at the start would let slow sends from one window arrive together with quick ones from the next
    (55 in a second against 50 at a 10,000-message burst). A send waits for room, so a burst (a
    cohort's touchpoints due in the same minute) drains at the gateway's rate instead of being
    refused by it; the worker's activity slots bound how many wait.
    The count is this worker process's: with N workers give each 1/N of the gateway's limit.
    """

    def __init__(self, channel: Channel, limit: RateLimitItem):
        self._channel = channel
        self._most = limit.amount
        self._window = limit.get_expiry()
        self._sending = 0
        self._ended: deque[float] = deque()
        self._room_changed = asyncio.Condition()

    async def send(self, recipient: Recipient, message: OutgoingMessage) -> str | None:
        async with self._room_changed:
            while not self._has_room():
                try:
                    async with asyncio.timeout(self._until_oldest_leaves()):
                        await self._room_changed.wait()
                except TimeoutError:
                    pass
            self._sending += 1
        try:
            return await self._channel.send(recipient, message)
        finally:
            async with self._room_changed:
                self._sending -= 1
                self._ended.append(time.monotonic())
                self._room_changed.notify_all()

    def _has_room(self) -> bool:
        while self._ended and self._ended[0] <= time.monotonic() - self._window:
            self._ended.popleft()
        return self._sending + len(self._ended) < self._most

    def _until_oldest_leaves(self) -> float | None:
        """None when every counted send is still under way: only one ending makes room then."""
        return self._ended[0] + self._window - time.monotonic() if self._ended else None


class ConsoleChannel:
    """For development and demonstrations: the message goes to the worker's log."""

    async def send(self, recipient: Recipient, message: OutgoingMessage) -> None:
        log.info("console message %s: %s\n%s", message.message_id, message.subject, message.body)
