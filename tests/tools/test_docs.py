"""docs/authoring.md: its worked example is a valid pathway, and its scenario example a valid scenario file."""

from __future__ import annotations

import re
from pathlib import Path

from services.settings import PROJECT_ROOT
from services.site import load_site
from tools.scenario_format import load_scenarios

SITE = load_site(PROJECT_ROOT / "pathways")

REPO = Path(__file__).resolve().parents[2]
GUIDE = (REPO / "docs" / "authoring.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```yaml\n(.*?)```", GUIDE, re.DOTALL)


def _block(start: str) -> str:
    return next(block for block in BLOCKS if block.startswith(start))


def test_the_worked_example_and_its_scenarios_are_valid(tmp_path: Path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "knee-replacement.yaml").write_text(_block("# yaml-language-server"), encoding="utf-8")
    (tmp_path / "tests" / "knee-replacement.yaml").write_text(_block("pathway: ../knee-replacement.yaml"),
                                                               encoding="utf-8")

    pathway = SITE.load_pathway(tmp_path / "knee-replacement.yaml")
    loaded = load_scenarios(tmp_path / "tests" / "knee-replacement.yaml", SITE)

    assert pathway.id == "knee-replacement" and len(loaded.spec.scenarios) == 3


def test_the_guide_names_every_command_and_every_step_kind_that_exists():
    from language.model import STEP_KINDS

    for command in ("carepath validate", "carepath preview", "carepath test", "carepath simulate", "--update"):
        assert command in GUIDE, command
    for kind in STEP_KINDS:
        assert f"kind: {kind}" in GUIDE, f"docs/authoring.md does not describe steps of kind '{kind}'"


def test_the_channels_example_is_valid(tmp_path: Path):
    (tmp_path / "channels-example.yaml").write_text(_block("# Channels example"), encoding="utf-8")
    pathway = SITE.load_pathway(tmp_path / "channels-example.yaml")
    assert {step.channel for step in pathway.steps} == {"wechat", "sms", "push"}
    assert {template.wechat.kind for step in pathway.steps for template in step.template.values()
            if template.wechat} == {"template", "subscribe"}


def test_the_pause_example_is_valid(tmp_path: Path):
    (tmp_path / "wound-follow-up.yaml").write_text(_block("# Pause example"), encoding="utf-8")
    pathway = SITE.load_pathway(tmp_path / "wound-follow-up.yaml")
    assert [step.while_paused for step in pathway.steps] == ["skip", "send_on_resume"]


def test_the_appointment_example_is_valid(tmp_path: Path):
    (tmp_path / "appointment-example.yaml").write_text(_block("# Appointment example"), encoding="utf-8")
    pathway = SITE.load_pathway(tmp_path / "appointment-example.yaml")
    visit, _, follow_up = pathway.steps
    assert (visit.kind, visit.mode, visit.on_missed.call) == ("appointment", "video", ["missed-visit-call"])
    assert (follow_up.after.step, follow_up.after.state) == ("video-check", "attended")


def test_the_occasions_example_is_valid(tmp_path: Path):
    (tmp_path / "occasions-example.yaml").write_text(_block("# Occasions example"), encoding="utf-8")
    pathway = SITE.load_pathway(tmp_path / "occasions-example.yaml")
    assert [step.at.occasion for step in pathway.steps] == ["birthday", "holiday cn/spring-festival", None]


def test_the_events_example_is_valid(tmp_path: Path):
    (tmp_path / "events-example.yaml").write_text(_block("# Events example"), encoding="utf-8")
    pathway = SITE.load_pathway(tmp_path / "events-example.yaml")
    assert set(pathway.events) == {"lab-result", "appointment"} and len(pathway.on_event) == 2


def test_the_reach_example_is_valid(tmp_path: Path):
    (tmp_path / "reach-example.yaml").write_text(_block("# Reach example"), encoding="utf-8")
    pathway = SITE.load_pathway(tmp_path / "reach-example.yaml")
    assert pathway.reach.channels == {"zh-CN": ["wechat", "sms"], "en": ["email"]}
    assert pathway.step(pathway.reach.call).kind == "call"
