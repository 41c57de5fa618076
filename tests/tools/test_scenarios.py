"""Pathway scenario tests (`carepath test`): the shipped scenarios pass and cover every rule, and the
runner says clearly what is wrong with a scenario file or a run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from language.events import rules_for
from language.loader import DocumentInvalid
from services.site import load_site
from tools.scenario_format import golden_path, load_scenarios
from tools.scenarios import default_paths, equivalent_shift, read_golden

REPO = Path(__file__).resolve().parents[2]
SHIPPED = default_paths(REPO / "pathways")
SITE = load_site(REPO / "pathways")


def _carepath(*arguments: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.cli", *arguments], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}, timeout=300)


def test_every_shipped_pathway_has_scenarios():
    pathways = sorted(path.stem for path in (REPO / "pathways").glob("*.yaml")
                      if path.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=./pathway.schema.json"))
    assert pathways and [path.stem for path in SHIPPED] == pathways


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
def test_shipped_scenarios_pass(path: Path):
    run = _carepath("test", str(path.relative_to(REPO)))
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^(\d+) scenarios: \1 passed, 0 failed$", run.stdout, re.MULTILINE), run.stdout


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
def test_shipped_scenarios_fire_every_rule_and_every_on_expire(path: Path):
    """Every `when` of every questionnaire, call and event, every on_expire and on_not_reached, happens in
    at least one scenario."""
    loaded = load_scenarios(path, SITE)
    lines = "\n".join(line for section in read_golden(golden_path(path)).values() for line in section)
    missing = []
    for step in loaded.pathway.steps:
        if step.kind not in ("questionnaire", "call"):
            continue
        for number, rule in enumerate(step.on, start=1):
            if f"({step.id}#" not in lines or not re.search(
                    rf"\({re.escape(step.id)}#\d+, rule {number}: {re.escape(rule.when)}\)", lines):
                missing.append(f"{step.id} rule {number}: {rule.when}")
        if getattr(step, "on_expire", None) and not re.search(
                rf"\((?:opened by )?{re.escape(step.id)}#\d+, no answer before expiry\)", lines):
            missing.append(f"{step.id} on_expire")
        if getattr(step, "on_not_reached", None) and not re.search(
                rf"\({re.escape(step.id)}#\d+, not reached in \d+ attempts\)", lines):
            missing.append(f"{step.id} on_not_reached")
    for event in loaded.pathway.events:
        for number, rule in enumerate(rules_for(loaded.pathway, event), start=1):
            if not re.search(rf"\({re.escape(event)}#\d+, rule {number}: {re.escape(rule.when)}\)", lines):
                missing.append(f"on_event {event} rule {number}: {rule.when}")
    assert not missing, f"no scenario in {path.name} makes these happen: {missing}"


# --- the runner's parts ------------------------------------------------------------------------


def test_a_zone_without_dst_moves_by_the_first_whole_weeks_after_now():
    now = datetime(2030, 5, 17, 13, 0, tzinfo=timezone.utc)
    shift = equivalent_shift(date(2026, 12, 1), "Asia/Shanghai", 60, now)
    moved = date(2026, 12, 1) + shift
    assert shift.days % 7 == 0 and moved.weekday() == date(2026, 12, 1).weekday()
    assert now + timedelta(days=1) <= datetime.combine(moved, datetime.min.time(), ZoneInfo("Asia/Shanghai")) \
        < now + timedelta(days=9)


def test_a_zone_with_dst_moves_to_a_calendar_with_the_same_changes_on_the_same_days():
    zone = ZoneInfo("Europe/London")
    anchor = date(2026, 10, 20)  # clocks go back on day 5, Sunday 25 October 2026
    shift = equivalent_shift(anchor, "Europe/London", 40, datetime(2026, 11, 23, tzinfo=timezone.utc))
    for day in range(40):
        for hour in (0, 1, 2, 12):
            written = datetime.combine(anchor + timedelta(days=day), datetime.min.time().replace(hour=hour), zone)
            moved = datetime.combine(anchor + shift + timedelta(days=day), written.time(), zone)
            assert written.utcoffset() == moved.utcoffset(), (day, hour)
    assert (anchor + shift).weekday() == anchor.weekday()


SMALL_PATHWAY = """\
id: small
version: 1
title: Small
anchor: start
timezone: UTC
locales: [en]
steps:
  - kind: questionnaire
    id: check
    instrument: satisfaction
    at: day 1 10:00
    remind: [24h]
    expire: 48h
    template: {en: {subject: Tell us, body: "{{ link }}"}}
    on:
      - when: recommend <= unhappy_max
        tag: unhappy
  - kind: message
    id: bye
    at: day 3 10:00
    template: {en: {subject: Bye, body: Goodbye}}
parameters:
  unhappy_max: {value: 6, source: "a test's own cut-off"}
"""


def _small(tmp_path: Path, scenarios: str) -> Path:
    (tmp_path / "small.yaml").write_text(SMALL_PATHWAY, encoding="utf-8")
    (tmp_path / "tests").mkdir(exist_ok=True)
    path = tmp_path / "tests" / "small.yaml"
    path.write_text("pathway: ../small.yaml\nanchor: 2026-12-01\n" + scenarios, encoding="utf-8")
    return path


def test_scenario_file_problems_are_reported_at_their_lines(tmp_path: Path):
    path = _small(tmp_path, """\
patient: {timezone: Mars/Olympus}
scenarios:
  - name: one
    answers:
      chek: [no answer]
      check:
        - {after: 2h, answers: {recommend: 11, overall_experience: good}}
        - no answer
  - name: one
    actions:
      - {at: day 2 10:00, page_the_doctor: escalation-1}
      - {at: day 2 10:00}
  - name: racing the reminder
    answers:
      check: [{after: 24h, answers: {recommend: 9, overall_experience: good}}]
""")
    with pytest.raises(DocumentInvalid) as invalid:
        load_scenarios(path, SITE)

    found = [(p.line, p.field, p.message) for p in invalid.value.problems]
    expected = [
        (3, "patient.timezone", "'Mars/Olympus' is not an IANA time zone"),
        (7, "scenarios[0].answers.chek", "'chek' is not a questionnaire step of small; its questionnaires: check"),
        (9, "scenarios[0].answers.check[0].answers.recommend", "recommend: "),
        (10, "scenarios[0].answers.check[1]", "check opens 1 time(s); this is one answer too many"),
        (11, "scenarios[1].name", "'one' names 2 scenarios"),
        (13, "scenarios[1].actions[0].page_the_doctor", "'page_the_doctor' is not a valid option here"),
        (14, "scenarios[1].actions[1]", "each action names exactly one of: cancel"),
    ]
    for line, field, message in expected:
        assert any(l == line and f == field and message in m for l, f, m in found), (line, field, message, found)


def test_an_answer_racing_a_reminder_is_refused(tmp_path: Path):
    path = _small(tmp_path, """\
scenarios:
  - name: racing the reminder
    answers:
      check: [{after: 24h, answers: {recommend: 9, overall_experience: good}}]
""")
    with pytest.raises(DocumentInvalid) as invalid:
        load_scenarios(path, SITE)
    [problem] = invalid.value.problems
    assert (problem.line, problem.field) == (6, "scenarios[0].answers.check[0].after")
    assert "the very moment a reminder falls due" in problem.message


def test_update_writes_the_golden_file_and_a_change_shows_as_a_diff_of_dated_events(tmp_path: Path):
    path = _small(tmp_path, """\
scenarios:
  - name: unhappy
    answers:
      check: [{after: 2h, answers: {recommend: 3, overall_experience: poor}}]
    expect: {status: completed, tags: [unhappy]}
  - name: cancelled before the end
    actions: [{at: day 2 12:00, cancel: moved away}]
    expect: {status: cancelled}
""")
    updated = _carepath("test", "--update", str(path))
    golden = golden_path(path).read_text(encoding="utf-8")

    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert "== unhappy ==\n" in golden and "== cancelled before the end ==\n" in golden
    assert "day  1 Wed 2026-12-02 12:00  answered    check#1\n" in golden
    assert "day  1 Wed 2026-12-02 12:00  tag         unhappy (check#1, rule 1: recommend <= unhappy_max)\n" in golden
    assert "day  2 Thu 2026-12-03 12:00  staff       cancel: moved away\n" in golden
    assert "day  2 Thu 2026-12-03 12:00  cancelled   bye#1 (planned for day 3 10:00)\n" in golden
    assert "end: cancelled (moved away); tags: none\n" in golden

    # The pathway changes: the goodbye moves to day 4. The run fails and shows the change by date.
    (tmp_path / "small.yaml").write_text(SMALL_PATHWAY.replace("at: day 3 10:00", "at: day 4 10:00"), encoding="utf-8")
    changed = _carepath("test", str(path))

    assert changed.returncode == 1
    assert "FAILED  unhappy" in changed.stdout and "ok      cancelled before the end" not in changed.stdout
    assert "-day  3 Fri 2026-12-04 10:00  sent        bye#1 scheduled email" in changed.stdout
    assert "+day  4 Sat 2026-12-05 10:00  sent        bye#1 scheduled email" in changed.stdout
    assert "carepath test --update" in changed.stdout
    assert "2 scenarios: 0 passed, 2 failed" in changed.stdout
    assert "Traceback" not in changed.stdout + changed.stderr


def test_unmet_expectations_are_said_plainly(tmp_path: Path):
    path = _small(tmp_path, """\
scenarios:
  - name: happy after all
    answers:
      check: [{after: 2h, answers: {recommend: 10, overall_experience: very_good}}]
    expect:
      status: cancelled
      tags: [unhappy]
      escalations: [{reason: Not happy}]
      messages: [{step: bye, at: day 4 10:00}]
""")
    run = _carepath("test", "--update", str(path))

    assert run.returncode == 1
    for text in ["expected status cancelled, but the enrollment ended completed", "expected tags [unhappy], got []",
                 "expected escalations:", "expected a message: bye at day 4 10:00"]:
        assert text in run.stdout, run.stdout


def test_missing_and_stale_golden_sections_fail(tmp_path: Path):
    path = _small(tmp_path, "scenarios:\n  - name: silent\n")
    golden_path(path).write_text("== gone ==\nday  1 Wed 2026-12-02 10:00  sent        check#1 invitation email\n",
                                 encoding="utf-8")

    run = _carepath("test", str(path))

    assert run.returncode == 1
    assert "FAILED  silent" in run.stdout and "+end: completed; tags: none" in run.stdout
    assert "has 'gone', which is no longer a scenario" in run.stdout


def test_cli_exit_codes_for_unreadable_and_invalid_files(tmp_path: Path):
    missing = _carepath("test", str(tmp_path / "nowhere.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("pathway: ../nowhere.yaml\nanchor: 2026-12-01\nscenarios: []\n", encoding="utf-8")
    invalid = _carepath("test", str(broken))

    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert invalid.returncode == 1 and f"{broken}:3:" in invalid.stderr and "^" in invalid.stderr
    assert "Traceback" not in missing.stderr + invalid.stderr


async def test_a_broken_workflow_fails_its_scenario_fast_and_the_next_one_still_runs(tmp_path: Path, monkeypatch):
    """An exception in workflow code is retried forever by Temporal: the runner must notice, say why,
    and give the next scenario a fresh environment."""
    import time

    import language.plan
    from tools.scenarios import run_files

    path = _small(tmp_path, "scenarios:\n  - name: broken\n  - name: healthy\n")
    broken = [True]
    window = language.plan.questionnaire_window

    def failing_window(*arguments, **keywords):
        if broken[0]:
            raise RuntimeError("boom in workflow code")
        return window(*arguments, **keywords)

    monkeypatch.setattr(language.plan, "questionnaire_window", failing_window)  # the workflow imports it through
    seen = []

    def on_result(loaded, result, diff):
        seen.append(result)
        broken[0] = False

    started = time.monotonic()
    [outcome] = await run_files([load_scenarios(path, SITE)], on_result=on_result)

    assert time.monotonic() - started < 45
    first, second = outcome.results
    assert first.aborted and first.failures == ["the pathway's workflow failed: boom in workflow code"]
    assert not second.aborted and not second.failures
    assert second.lines[-1] == "end: completed; tags: none"
    assert "day  1 Wed 2026-12-02 10:00  sent        check#1 invitation email" in second.lines


def test_a_staff_action_with_nothing_to_act_on_fails_naming_it(tmp_path: Path):
    path = _small(tmp_path, """\
scenarios:
  - name: acknowledging what never happened
    actions: [{at: day 2 10:00, acknowledge: Not happy}]
""")
    run = _carepath("test", "--update", str(path))

    assert run.returncode == 1 and "Traceback" not in run.stdout + run.stderr
    assert "acknowledge: no open escalation 'Not happy' at day 2 10:00" in run.stdout


def test_call_outcomes_must_name_call_steps(tmp_path: Path):
    path = _small(tmp_path, """\
scenarios:
  - name: calling a questionnaire
    calls: {check: [reached]}
    actions: [{at: day 2 10:00, call_outcome: {step: bye, outcome: reached}}]
""")
    with pytest.raises(DocumentInvalid) as invalid:
        load_scenarios(path, SITE)
    found = [(p.line, p.field, p.message) for p in invalid.value.problems]
    assert found == [
        (5, "scenarios[0].calls.check", "'check' is not a call step of small; its call steps: none"),
        (6, "scenarios[0].actions[0].call_outcome.step", "'bye' is not a call step of small; its call steps: none")]


def test_events_must_be_declared_and_fit_their_declaration(tmp_path: Path):
    path = _small(tmp_path, """\
scenarios:
  - name: a lab result the pathway does not declare
    actions:
      - {at: day 2 10:00, event: {type: lab-result, values: {hb_g_dl: 9}}}
""")
    with pytest.raises(DocumentInvalid) as invalid:
        load_scenarios(path, SITE)
    found = [(p.line, p.field, p.message) for p in invalid.value.problems]
    assert found == [(6, "scenarios[0].actions[0].event", "pathway small v1 takes no event 'lab-result' "
                                                          "(it takes: none)")]


def test_versions_a_scenario_names_must_be_files_of_the_same_pathway(tmp_path: Path):
    path = _small(tmp_path, """\
versions: {3: ../small.yaml}
scenarios:
  - name: on a version nobody wrote
    version: 2
    actions: [{at: day 2 10:00, migrate_to: 9}]
""")
    with pytest.raises(DocumentInvalid) as invalid:
        load_scenarios(path, SITE)

    assert [(p.line, p.field, p.message) for p in invalid.value.problems] == [
        (3, "versions.3", "../small.yaml is small version 1, not small version 3"),
        (6, "scenarios[0].version", "version 2 is not among the pathway's versions (1); add its file to `versions`"),
        (7, "scenarios[0].actions[0].migrate_to",
         "version 9 is not among the pathway's versions (1); add its file to `versions`")]
