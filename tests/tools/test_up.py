"""`carepath up` as a developer runs it: every part answers, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from services.settings import PROJECT_ROOT
from tools.devstack import HOST, accepts_connections
from tools.smtp_sink import free_port

CAREPATH = Path(sys.executable).parent / "carepath"


def readme_example() -> str:
    """The shell block of README's "Enroll a patient"."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Enroll a patient"):]
    return re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)


def eventually(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def ports() -> dict[str, int]:
    return {name: free_port() for name in ("TEMPORAL", "TEMPORAL_UI", "SMTP", "API")}


def start_up(tmp_path: Path, ports: dict[str, int], log: Path, *options: str) -> subprocess.Popen:
    env = os.environ | {"CAREPATH_DEV_VAR_DIR": str(tmp_path / "var")}
    env |= {f"CAREPATH_DEV_{name}_PORT": str(port) for name, port in ports.items()}
    with open(log, "wb") as output:
        return subprocess.Popen([str(CAREPATH), "up", *options], stdout=output, stderr=subprocess.STDOUT, env=env)


def children_when_ready(up: subprocess.Popen, log: Path) -> dict[str, int]:
    """The banner's `processes  temporal pid 1, worker pid 2, api pid 3`, once it is printed."""

    def banner():
        if up.poll() is not None:
            raise AssertionError(f"carepath up exited with {up.returncode} before it was ready:\n{log.read_text()}")
        return re.search(r"processes +(.*)", log.read_text())

    banner = eventually(banner, 90, "the ready banner")
    return {name: int(pid) for name, pid in re.findall(r"(\w+) pid (\d+)", banner.group(1))}


def leave_nothing_running(up: subprocess.Popen, children: dict[str, int]) -> None:
    if up.poll() is None:
        up.kill()
        up.wait()
    for pid in children.values():
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)


@contextmanager
def running_up(tmp_path: Path, ports: dict[str, int],
               *options: str) -> Iterator[tuple[subprocess.Popen, Path, dict[str, int]]]:
    """`carepath up` until the block ends; whatever happens, nothing it started survives the test."""
    log = tmp_path / "up.log"
    up = start_up(tmp_path, ports, log, *options)
    children: dict[str, int] = {}
    try:
        children = children_when_ready(up, log)
        yield up, log, children
    finally:
        leave_nothing_running(up, children)


@pytest.mark.e2e
def test_up_serves_every_part_and_ctrl_c_stops_them_all(tmp_path, ports):
    with running_up(tmp_path, ports) as (up, log, children):
        assert sorted(children) == ["api", "temporal", "worker"]
        assert accepts_connections(ports["TEMPORAL"])
        assert httpx.get(f"http://{HOST}:{ports['TEMPORAL_UI']}/", timeout=10).status_code == 200

        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = "carepath@example.test", "patient@example.test", "Smoke test"
        mail.set_content("Hello")
        with smtplib.SMTP(HOST, ports["SMTP"], timeout=10) as smtp:
            smtp.send_message(mail)
        kept = eventually(lambda: list((tmp_path / "var" / "mail" / "new").iterdir()), 10, "the mail file")
        assert "Subject: Smoke test" in kept[0].read_text()
        eventually(lambda: "mail to patient@example.test: Smoke test" in log.read_text(), 10, "the mail notice")

        assert httpx.get(f"http://{HOST}:{ports['API']}/docs", timeout=10).status_code == 200
        password, me = first_sign_in(ports["API"], log)
        assert me["roles"] == ["admin", "auditor", "clinical_manager", "clinician", "integration"]
        # README's example, as written (but for the port), against this stack.
        example = readme_example().replace("127.0.0.1:8000", f"{HOST}:{ports['API']}").replace(
            "PASSWORD='the one-time password make up printed'", f"PASSWORD='{password}'")
        ran = subprocess.run(["bash", "-euo", "pipefail", "-c", example], capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        enrollment = json.loads(ran.stdout[ran.stdout.index("{\n"):])
        assert (enrollment["pathway_id"], enrollment["status"]) == ("demo", "active")
        assert [entry["status"] for entry in enrollment["timeline"]["entries"]] == ["planned", "planned"]

        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0, log.read_text()
        assert [name for name, pid in children.items() if alive(pid)] == []
        assert [port for port in ports.values() if accepts_connections(port)] == []
        assert (tmp_path / "var" / "temporal.db").exists()


def first_sign_in(api_port: int, log: Path) -> tuple[str, dict]:
    """The first account's one-time password, printed once, signs in: the password, and who it is."""
    email, password = re.search(r"sign in +(\S+) / (\S+)", log.read_text()).groups()
    token = httpx.post(f"http://{HOST}:{api_port}/auth/token", data={"username": email, "password": password},
                       timeout=10)
    assert token.status_code == 200, token.text
    return password, httpx.get(f"http://{HOST}:{api_port}/auth/me", timeout=10,
                               headers={"Authorization": f"Bearer {token.json()['access_token']}"}).json()


@pytest.mark.e2e
def test_up_with_postgres_keeps_the_store_in_an_embedded_server_and_stops_it_last(tmp_path, ports):
    with running_up(tmp_path, ports, "--postgres") as (up, log, children):
        postmaster = tmp_path / "var" / "postgres" / "postmaster.pid"
        postgres_pid = int(postmaster.read_text().splitlines()[0])
        assert alive(postgres_pid)
        assert f"database       {tmp_path / 'var' / 'postgres'} (PostgreSQL" in log.read_text()
        assert not (tmp_path / "var" / "store.db").exists()
        _, me = first_sign_in(ports["API"], log)
        assert me["roles"] == ["admin", "auditor", "clinical_manager", "clinician", "integration"]

        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0, log.read_text()
        assert [name for name, pid in children.items() if alive(pid)] == []
        assert not postmaster.exists()  # pg_ctl stop waited for this; the process itself may take a moment more
        eventually(lambda: not alive(postgres_pid), 10, "PostgreSQL's server process to end")
        said = log.read_text()
        assert said.index("api stopped") < said.index("worker stopped") < said.index("PostgreSQL stopped")

    # Again: the same server files and database, with the account made the first time.
    (tmp_path / "up.log").unlink()
    with running_up(tmp_path, ports, "--postgres") as (up, log, children):
        assert "sign in        with your account" in log.read_text()
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, log.read_text()
        assert "PostgreSQL stopped" in log.read_text()


@pytest.mark.e2e
def test_sigterm_stops_every_child_and_frees_every_port(tmp_path, ports):
    with running_up(tmp_path, ports) as (up, log, children):
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, log.read_text()
        assert [name for name, pid in children.items() if alive(pid)] == []
        assert [port for port in ports.values() if accepts_connections(port)] == []


@pytest.mark.e2e
def test_a_closed_terminal_stops_every_child_and_frees_every_port(tmp_path, ports):
    # A terminal window closed: SIGHUP, and from then on every write to the terminal fails (EIO).
    terminal, terminal_side = pty.openpty()
    env = os.environ | {"CAREPATH_DEV_VAR_DIR": str(tmp_path / "var")}
    env |= {f"CAREPATH_DEV_{name}_PORT": str(port) for name, port in ports.items()}
    up = subprocess.Popen([str(CAREPATH), "up"], stdin=terminal_side, stdout=terminal_side, stderr=terminal_side,
                          env=env, start_new_session=True)
    os.close(terminal_side)
    shown, children = b"", {}
    try:
        deadline = time.monotonic() + 90
        while not (banner := re.search(rb"processes +(.*)\r?\n", shown)):
            assert select.select([terminal], [], [], deadline - time.monotonic())[0], "no ready banner in 90s"
            shown += os.read(terminal, 4096)
        children = {name.decode(): int(pid) for name, pid in re.findall(rb"(\w+) pid (\d+)", banner.group(1))}
        assert sorted(children) == ["api", "temporal", "worker"]
        os.close(terminal)
        up.send_signal(signal.SIGHUP)
        assert up.wait(60) == 0
        assert [name for name, pid in children.items() if alive(pid)] == []
        assert [port for port in ports.values() if accepts_connections(port)] == []
    finally:
        leave_nothing_running(up, children)


@pytest.mark.e2e
def test_a_child_that_dies_is_reported_and_the_rest_stopped(tmp_path, ports):
    with running_up(tmp_path, ports) as (up, log, children):
        os.kill(children["worker"], signal.SIGKILL)
        assert up.wait(60) == 1
        assert "worker was killed by SIGKILL; stopping the rest" in log.read_text()
        assert [name for name, pid in children.items() if alive(pid)] == []


def test_up_names_a_port_already_taken(tmp_path, ports):
    with socket.socket() as squatter:
        squatter.bind((HOST, ports["API"]))
        squatter.listen()
        log = tmp_path / "up.log"
        up = start_up(tmp_path, ports, log)
        assert up.wait(30) == 2
    assert f"port {ports['API']} (API) on {HOST} is already in use" in log.read_text()
    assert not (tmp_path / "var").exists()
