"""Today's workflow code replays every recorded history: a change that would make a running
enrollment or escalation issue different commands than it already did fails here, before a deploy
strands them (see ARCHITECTURE.md, "Changing workflow code under running enrollments")."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.escalation import EscalationWorkflow
from workflows.pathway import PathwayWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*/*.json"))


def test_the_recordings_cover_both_workflows():
    names = [path.stem for path in HISTORIES]
    assert any("--escalation-" in name for name in names) and any("--escalation-" not in name for name in names)


@pytest.mark.parametrize("path", HISTORIES, ids=lambda path: f"{path.parent.name}/{path.stem}")
async def test_history_replays_without_nondeterminism(path: Path):
    replayer = Replayer(workflows=[PathwayWorkflow, EscalationWorkflow], data_converter=pydantic_data_converter)
    # The workflow id is not part of a saved history; the file's name stands in for it.
    await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8")))
