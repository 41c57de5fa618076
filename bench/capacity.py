"""Many active enrollments on one machine, and a cohort whose touchpoints all fall due in one minute.

    .venv/bin/python bench/capacity.py [--enrollments 10000] [--rate-limit 50/second] [--spread 30m] [--workers 2]

The same stack as bench/api_load.py (Temporal dev server, SMTP sink, API, one worker, SQLite), the
worker given CAREPATH_CHANNEL_RATE_LIMITS={"email": <--rate-limit>}; with --workers N, N worker
processes, each given 1/N of the limit. Then:

1. empty system: the API's enrollment latency at --probe-rate (open loop, as in api_load.py);
2. N enrollments (through services.enrollments.enroll, START_CONCURRENCY at a time) of a pathway
   whose first message falls due at the same instant for all of them (--spread spreads it); its second,
   a month later, keeps every run going past the burst, as a cohort's day-N touchpoint rarely is its
   last (a burst of last messages also ends N workflows at once: 2,000 of them took 1.5 times as
   long here); with raw
   Temporal's workflow-start rate measured beside;
3. with N active, once the worker has caught up with their starts (the task queue's backlog is
   empty: enrollments at rest, as a hospital's are between touchpoints): resident memory (RSS) of
   worker, API and Temporal server, and the same API probe;
4. the burst: lateness of each delivery (the store's sent_at - due_at), p50/p99 and the last, and
   the most messages the SMTP sink (the gateway) took within any one second, against its limit, and
   the CPU each part of the stack used per delivery while the burst drained.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from limits import parse as parse_rate_limit
from sqlalchemy import func, select
from temporalio.client import Client

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # run as a script from anywhere: the project's packages

from api_load import PATHWAY as PROBE_PATHWAY  # noqa: E402
from api_load import (  # noqa: E402
    START_CONCURRENCY,
    BenchStack,
    add_patients,
    bench_stack,
    measured,
    open_loop,
    percentile,
    raw_start_rate,
    until_settled,
)

from language.validation import parse_pathway  # noqa: E402
from services.enrollments import enroll  # noqa: E402
from services.payload_codec import data_converter  # noqa: E402
from services.settings import Settings  # noqa: E402
from store.db import Patient, TouchpointRecord, create_engine, session_factory  # noqa: E402

PATHWAY = """\
id: bench-capacity
version: 1
title: A cohort due at once
anchor: start
locales: [en]
steps:
  - kind: message
    id: burst
    at: {lead}s
{spread}    template:
      en:
        subject: "Your check-in"
        body: "Dear {{{{ patient.first_name }}}}, how are you today?"
  - kind: message
    id: a-month-on
    at: 30d
    template:
      en:
        subject: "A month on"
        body: "Dear {{{{ patient.first_name }}}}, a month on."
"""
# Each enrollment start is a database row and a workflow start; slower than this and the burst
# would fall due before the last enrollment, which would skip it.
ENROLLMENTS_PER_SECOND_AT_LEAST = 15


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def workers_rss(stack: BenchStack) -> dict[str, float]:
    if len(stack.workers) == 1:
        return {"worker": rss_mib(stack.workers[0].pid)}
    return {f"worker {number}": rss_mib(worker.pid) for number, worker in enumerate(stack.workers, 1)}


async def enroll_all(database_url: str, client: Client, task_queue: str, pathway, anchor: datetime,
                     count: int) -> float:
    engine = create_engine(database_url, pool_size=START_CONCURRENCY)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            ids = await add_patients(database_url, count)
            patients = list(await session.scalars(select(Patient).where(Patient.id.in_(ids))))
        pending = iter(patients)

        async def enroller() -> None:
            for patient in pending:
                async with sessions() as session:
                    await enroll(session, client, task_queue, patient=patient, pathway=pathway, anchor=anchor)

        began = time.monotonic()
        await asyncio.gather(*(enroller() for _ in range(START_CONCURRENCY)))
        return count / (time.monotonic() - began)
    finally:
        await engine.dispose()


async def until_delivered(database_url: str, count: int, timeout: float) -> list[tuple[datetime, datetime]]:
    """(due, sent) of every sent touchpoint, once `count` are sent or `timeout` passed."""
    engine = create_engine(database_url)
    try:
        deadline = time.monotonic() + timeout
        async with session_factory(engine)() as session:
            while time.monotonic() < deadline:
                sent = await session.scalar(select(func.count()).where(TouchpointRecord.status == "sent"))
                if sent >= count:
                    break
                await asyncio.sleep(2)
            rows = await session.execute(select(TouchpointRecord.due_at, TouchpointRecord.sent_at)
                                         .where(TouchpointRecord.status == "sent"))
            return [(due, sent) for due, sent in rows.all()]
    finally:
        await engine.dispose()


def busiest_second(moments: list[datetime]) -> int:
    """The most moments within any window of one second."""
    ordered = sorted(moments)
    most, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= timedelta(seconds=1):
            start += 1
        most = max(most, end - start + 1)
    return most


async def main(options: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="carepath-capacity-") as tmp:
        workdir = options.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        # The limit is counted in each worker process (activities/channels.py): each takes its share.
        gateway = parse_rate_limit(options.rate_limit)
        share = f"{gateway.amount // options.workers}/{gateway.multiples} {gateway.GRANULARITY.name}"
        limits = {"CAREPATH_CHANNEL_RATE_LIMITS": f'{{"email": "{share}"}}'}
        async with bench_stack(workdir, "bench-capacity", PROBE_PATHWAY, limits, options.workers) as stack:
            # The test environment's derived payload key: the worker's and API's, and so this side's.
            client = Client(**stack.environment.client.config() | {
                "data_converter": data_converter(Settings(ENVIRONMENT="test"))})

            async def probe() -> list[float]:
                rate = options.probe_rate
                patients = await add_patients(stack.database_url, round(rate * options.probe_seconds))
                return (await open_loop(stack.http, rate, options.probe_seconds, patients)).latencies

            empty = await probe()
            print(f"empty system: API p95 {percentile(empty, 95):.3f}s; RSS "
                  + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in workers_rss(stack).items()), flush=True)
            raw_rate = await raw_start_rate(stack.environment.client)
            lead = round(options.enrollments / ENROLLMENTS_PER_SECOND_AT_LEAST) + 60
            spread = f"    spread: {options.spread}\n" if options.spread else ""
            source = PATHWAY.format(lead=lead, spread=spread)
            # Deployed, as every version enrollments follow is: the worker reads the message's template there.
            (await stack.http.post("/pathways", content=source.encode(),
                                   headers={"Content-Type": "application/yaml"})).raise_for_status()
            pathway = parse_pathway(source, "capacity pathway", {}, [])
            anchor = datetime.now(UTC)
            due = anchor + timedelta(seconds=lead)
            enroll_rate = await enroll_all(stack.database_url, client, stack.task_queue, pathway, anchor,
                                           options.enrollments)
            print(f"{options.enrollments} enrolled at {enroll_rate:.1f}/s (raw Temporal starts "
                  f"{raw_rate:.1f}/s); all due at {due:%H:%M:%S}", flush=True)
            settled = await until_settled(client, stack.task_queue)
            print(f"the worker caught up {settled:.0f}s after the last enrollment", flush=True)
            memory = workers_rss(stack) | {"API": rss_mib(stack.api.pid), "Temporal": rss_mib(stack.server_pid)}
            loaded = await probe()
            print(f"with {options.enrollments} active: API p95 {percentile(loaded, 95):.3f}s; RSS "
                  + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in memory.items()), flush=True)
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
            delivered, burst_cpu = await measured(stack, until_delivered(stack.database_url, options.enrollments,
                                                                         options.deliver_within * 2))
            memory |= {f"{name} after the burst": mib for name, mib in workers_rss(stack).items()}
            taken = [mail.received_at for mail in stack.inbox.messages]
        report(options, empty, loaded, memory, delivered, taken, parse_rate_limit(options.rate_limit).amount)
        print("CPU ms per delivery during the burst: " + ", ".join(
            f"{part} {1000 * seconds / max(len(delivered), 1):.1f}" for part, seconds in burst_cpu.items()))


def report(options: argparse.Namespace, empty: list[float], loaded: list[float], memory: dict[str, float],
           delivered: list[tuple[datetime, datetime]], taken: list[datetime], limit_per_second: int) -> None:
    lateness = [(sent - due).total_seconds() for due, sent in delivered]
    print(f"\n{options.enrollments} enrollments, their first message due at one instant"
          + (f" spread over {options.spread}" if options.spread else "")
          + f"; email limited to {options.rate_limit}")
    print(f"API enrollment latency at {options.probe_rate:g}/s: empty p50 {percentile(empty, 50):.3f}s "
          f"p95 {percentile(empty, 95):.3f}s; with all active p50 {percentile(loaded, 50):.3f}s "
          f"p95 {percentile(loaded, 95):.3f}s")
    print("RSS: " + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in memory.items()) + " (goal: a worker <= 1024)")
    if not lateness:
        print("nothing delivered")
        return
    print(f"delivered {len(lateness)} of {options.enrollments}; lateness (sent - due) p50 {percentile(lateness, 50):.1f}s, "
          f"p99 {percentile(lateness, 99):.1f}s, last {max(lateness):.1f}s (goal: all within "
          f"{options.deliver_within:g}s)")
    # Where the limit applies: the gateway's own clock of what it took (the store's sent_at comes after the
    # gateway's answer, which a slow answer delays into the next second).
    print(f"most taken by the gateway within one second: {busiest_second(taken)} (limit {limit_per_second})")


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrollments", type=int, default=10_000, help="active enrollments (default 10000)")
    parser.add_argument("--rate-limit", default="50/second",
                        help="the email gateway's limit, shared among the workers (default 50/second)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--spread", help="spread the step over this window (e.g. 30m); default: none")
    parser.add_argument("--deliver-within", type=float, default=300, help="goal for the last delivery (s)")
    parser.add_argument("--probe-rate", type=float, default=10, help="API probe: enrollments per second")
    parser.add_argument("--probe-seconds", type=float, default=10, help="API probe: length (s)")
    parser.add_argument("--workdir", type=Path, help="keep databases and logs here (default: a temporary directory)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_options()))
    sys.stdout.flush()
    os._exit(0)
