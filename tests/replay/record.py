"""Record the Temporal histories that test_replay.py replays against today's workflow code.

Each recording is a shipped scenario (pathways/tests/*.yaml) played by the scenario runner on the
time-skipping server through the real worker, database and SMTP sink; the closed workflows'
histories are written to histories/<release>/<pathway>--<scenario>[--escalation-<n>].json.
Escalations that the scenario acknowledged are then resolved, so their histories run to completion too.

Run from the repository root, and only once the replay test passes against the files already here
(ARCHITECTURE.md, "Changing workflow code under running enrollments"). Older releases' folders stay
for as long as runs started on that code may exist:

    .venv/bin/python -m tests.replay.record [RELEASE]   # (re)writes histories/RELEASE, default today's date
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from temporalio.client import Client

from services.site import load_site
from store.db import Enrollment, EscalationRecord
from tools.deeds import STAFF_ID
from tools.scenario_format import Loaded, load_scenarios
from tools.scenarios import run_scenario
from tools.simulation import Stack, local_stack, time_skipping_environment
from workflows.contracts import StaffAction, escalation_workflow_id, workflow_id_for
from workflows.escalation import EscalationWorkflow

REPO = Path(__file__).resolve().parents[2]
HISTORIES = Path(__file__).resolve().parent / "histories"


@dataclass(frozen=True)
class Recording:
    pathway: str  # the scenario file pathways/tests/<pathway>.yaml
    scenario: str  # a scenario's name in it


# Together they issue every kind of command the workflows have: messages to completion, answers
# firing rules and starting escalations, a cancellation, a call with its outcome, an escalation
# notified, acknowledged and resolved, a migration to a newer version mid-way, a pause with its resume,
# an anchor moved, and events firing a rule.
RECORDINGS = [
    Recording("post-surgery-recovery", "smooth recovery, no rule fires"),
    Recording("postnatal-42d", "everything at once fires every postnatal-check rule"),
    Recording("postnatal-42d", "cancelled on day 10, readmitted"),
    Recording("postnatal-42d", "reached by phone at day 50 with raised blood pressure, acknowledged by a midwife"),
    Recording("post-surgery-recovery", "enrolled on version 2, moved to version 3 on day 10"),
    Recording("post-surgery-recovery", "readmitted on day 2, home again on day 4"),
    Recording("post-surgery-recovery", "discharge postponed by two days, noticed on day 1"),
    Recording("postnatal-42d", "the clinic sends a raised blood pressure on day 10, a normal one on day 12"),
]


def history_name(recording: Recording, suffix: str = "") -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", recording.scenario.lower()).strip("-")
    return f"{recording.pathway}--{slug}{suffix}"


async def record(recording: Recording, loaded: Loaded, folder: Path) -> list[Path]:
    """Play one scenario in a fresh environment and write the histories of its workflows."""
    index = [scenario.name for scenario in loaded.spec.scenarios].index(recording.scenario)
    with tempfile.TemporaryDirectory(prefix="carepath-record-") as workdir:
        async with time_skipping_environment() as environment, \
                local_stack(environment.client, Path(workdir), loaded.site) as stack:
            result = await run_scenario(environment, stack, loaded, index)
            if result.failures:
                raise SystemExit(f"{recording.scenario}: {'; '.join(result.failures)}")
            enrollment_id, escalation_ids = await _workflows_of_the_run(stack)
            written = [await _write(stack.client, workflow_id_for(enrollment_id), folder / history_name(recording))]
            for number, escalation_id in enumerate(escalation_ids, start=1):
                workflow_id = escalation_workflow_id(escalation_id)
                await _resolve_if_acknowledged(stack.client, workflow_id)
                written.append(await _write(stack.client, workflow_id,
                                             folder / history_name(recording, f"--escalation-{number}")))
            return written


async def _workflows_of_the_run(stack: Stack) -> tuple[str, list[str]]:
    """The one enrollment of a fresh stack, and its escalations in the order they were opened."""
    async with stack.sessions() as session:
        enrollment_id = (await session.scalars(select(Enrollment.id))).one()
        escalations = await session.scalars(select(EscalationRecord.id)
                                            .where(EscalationRecord.enrollment_id == enrollment_id)
                                            .order_by(EscalationRecord.opened_at, EscalationRecord.id))
        return enrollment_id, list(escalations)


async def _resolve_if_acknowledged(client: Client, workflow_id: str) -> None:
    handle = client.get_workflow_handle_for(EscalationWorkflow.run, workflow_id)
    state = await handle.query(EscalationWorkflow.state)
    if state.status == "acknowledged":
        await handle.execute_update(EscalationWorkflow.resolve,
                                    StaffAction(staff_id=STAFF_ID, team=state.notified[-1].team))
        await handle.result()


async def _write(client: Client, workflow_id: str, stem: Path) -> Path:
    """Only closed workflows are recorded: an open one (an escalation nobody acknowledged, left running
    when the scenario ends) is ended here by terminating, which the replayer accepts like any close."""
    handle = client.get_workflow_handle(workflow_id)
    if (await handle.describe()).close_time is None:
        await handle.terminate(reason="recording over")
    history = await handle.fetch_history()
    path = stem.with_suffix(".json")
    # One event a line: small files whose diffs still show which event changed.
    events = history.to_json_dict()["events"]
    path.write_text("{\"events\": [\n" + ",\n".join(json.dumps(event, separators=(",", ":")) for event in events)
                    + "\n]}\n", encoding="utf-8")
    return path


async def main(release: str) -> None:
    site = load_site(REPO / "pathways")
    folder = HISTORIES / release
    folder.mkdir(parents=True, exist_ok=True)
    for recording in RECORDINGS:
        loaded = load_scenarios(REPO / "pathways" / "tests" / f"{recording.pathway}.yaml", site)
        for path in await record(recording, loaded, folder):
            print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else f"{datetime.now(UTC):%Y-%m-%d}")))
