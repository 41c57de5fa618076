"""A real SMTP server that keeps what it receives: the dev stack's mailbox, and the tests' inbox."""

from __future__ import annotations

import email
import email.policy
import mailbox
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Self

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class ReceivedMail:
    recipients: tuple[str, ...]
    message: EmailMessage
    # When the server took it: what a gateway's rate limit is about (benches measure that).
    received_at: datetime

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def message_id(self) -> str:
        # Long ids are folded across lines by the sender; the id itself has no white space.
        return "".join(str(self.message["Message-ID"]).split())

    @property
    def body(self) -> str:
        return self.message.get_content()


class _Handler:
    def __init__(self, sink: SmtpSink):
        self._sink = sink

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        self._sink._keep(ReceivedMail(tuple(envelope.rcpt_tos), message, datetime.now(UTC)))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpSink:
    """aiosmtpd on loopback; messages are kept in memory and, if given a folder, in a Maildir."""

    def __init__(self, port: int | None = None, maildir: Path | None = None):
        self.port = port or free_port()
        self._maildir = mailbox.Maildir(maildir, create=True) if maildir else None
        self._messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def _keep(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)
            if self._maildir is not None:
                self._maildir.add(mail.message.as_bytes())

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()
