"""Today's workflow code replays every recorded history: a change that would make a running
enrollment or escalation issue different commands than it already did fails here, before a deploy
strands them (see ARCHITECTURE.md, "Changing workflow code under running enrollments")."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from services.payload_codec import data_converter
from services.settings import Settings
from workflows.escalation import EscalationWorkflow
from workflows.pathway import PathwayWorkflow

# The histories are encrypted with the development key (tests.replay.record runs on the simulation's
# test settings); histories/0.1.0 is the baseline, a later release's folder sits beside it.
RECORDED_WITH = data_converter(Settings(ENVIRONMENT="test", SECRET_KEY=None, PAYLOAD_KEYS=None))
HISTORIES = sorted((Path(__file__).parent / "histories").glob("*/*.json"))


def test_the_recordings_cover_both_workflows():
    names = [path.stem for path in HISTORIES]
    assert any("--escalation-" in name for name in names) and any("--escalation-" not in name for name in names)


@pytest.mark.parametrize("path", HISTORIES, ids=lambda path: f"{path.parent.name}/{path.stem}")
async def test_history_replays_without_nondeterminism(path: Path):
    replayer = Replayer(workflows=[PathwayWorkflow, EscalationWorkflow], data_converter=RECORDED_WITH)
    # The workflow id is not part of a saved history; the file's name stands in for it.
    await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8")))
