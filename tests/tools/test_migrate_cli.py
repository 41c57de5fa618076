"""`carepath migrate plan | apply | rollback` against a real worker, database and Temporal server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from services.registry import PathwayRegistry
from store.db import AccessAudit, Enrollment
from tests.workflows.migration_versions import VERSION_2, VERSION_3
from tools.simulation import local_stack, time_skipping_environment

REPO = Path(__file__).resolve().parents[2]


async def _carepath(stack, address: str, *arguments: str) -> tuple[int, str, str]:
    # Not subprocess.run: the worker serving the command's queries and updates runs on this event loop.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.cli", "migrate", *arguments, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CAREPATH_ENVIRONMENT": "test", "CAREPATH_DATABASE_URL": stack.settings.DATABASE_URL,
             "CAREPATH_TEMPORAL_ADDRESS": address, "NO_COLOR": "1", "COLUMNS": "200"})
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode, out.decode(), err.decode()


async def test_plan_then_apply_then_roll_back_from_the_command_line(tmp_path: Path):
    async with time_skipping_environment() as environment, local_stack(environment.client, tmp_path) as stack:
        address = environment.client.service_client.config.target_host
        registry = PathwayRegistry(stack.sessions, stack.instruments)
        v2 = (await registry.deploy(VERSION_2, "v2.yaml")).deployed.pathway
        await registry.deploy(VERSION_3, "v3.yaml")
        # Day 10 by the wall clock, which is what the command plans for: days 1 to 9 were skipped at enrollment.
        anchor = datetime.now(UTC).date() - timedelta(days=10)
        enrolled = await stack.enroll(await stack.add_patient(timezone="Asia/Shanghai"), v2, anchor)
        enrollment_id = enrolled.enrollment.id

        code, out, err = await _carepath(stack, address, "plan", "recovery-check", "--to", "3")
        assert code == 0, err
        assert f"{enrollment_id} (Asia/Shanghai): recovery-check v2 -> v3" in out
        assert f"  added    day14-check#1 questionnaire {anchor + timedelta(days=14)} 10:00" in out
        assert f"  removed  day21-message#1 message {anchor + timedelta(days=21)} 10:00" in out
        assert "1 enrollment(s); 0 cannot migrate" in out

        code, out, err = await _carepath(stack, address, "plan", "recovery-check", "--to", "3", "--json")
        [report] = json.loads(out)
        assert report["plan"]["renamed"] == {"week2-note": "two-week-note"} and report["result"] is None

        code, out, err = await _carepath(stack, address, "apply", "recovery-check", "--to", "3", "--by", "st_ops")
        assert code == 0 and "  result: migrated" in out, out + err
        code, out, err = await _carepath(stack, address, "rollback", "recovery-check", enrollment_id, "--by", "st_ops")
        assert code == 0 and out == f"{enrollment_id}: recovery-check v3 -> v2 (rolled back)\n", out + err
        code, out, err = await _carepath(stack, address, "rollback", "recovery-check", enrollment_id, "--by", "st_ops")
        assert code == 1 and "this enrollment has not been migrated" in err

        async with stack.sessions() as session:
            assert (await session.get(Enrollment, enrollment_id)).pathway_version == 2
            audited = [(row.action, row.actor_id, row.target) for row in
                       (await session.scalars(select(AccessAudit).order_by(AccessAudit.id))).all()]
        assert audited == [("enrollment.migrate", "st_ops", "recovery-check v2 -> v3"),
                           ("enrollment.migration_rollback", "st_ops", "recovery-check v3 -> v2 (rolled back)")]
        await enrolled.workflow.terminate()
