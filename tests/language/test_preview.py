"""`carepath preview`: the plan by day and local time, as text, JSON and a self-contained HTML page."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from language.plan import compile_plan
from language.preview import preview, render, to_data, to_html, to_text
from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site

SITE = load_site(PROJECT_ROOT / "pathways")

REPO = Path(__file__).resolve().parents[2]
POSTNATAL = REPO / "pathways" / "postnatal-42d.yaml"
POST_SURGERY = REPO / "pathways" / "post-surgery-recovery.yaml"
ANCHOR = date(2026, 12, 1)  # a Tuesday; preview is a pure function, so a fixed date never goes stale


def _lines(text: str) -> list[str]:
    return [re.sub(r"\s+", " ", line.strip()) for line in text.splitlines()]


def test_text_lists_every_touchpoint_window_and_reminder_by_day_and_local_time():
    lines = _lines(to_text(preview(SITE.load_pathway(POSTNATAL), ANCHOR)))

    assert lines[0] == "Postnatal follow-up, 42 days (postnatal-42d v4)"
    assert lines[1] == ("Anchor delivery_date: 2026-12-01 Tue 00:00; times in Asia/Shanghai; "
                        "send window 09:00-20:00")
    for expected in [
        "1 Wed 2026-12-02 10:00 welcome message (zh-CN: wechat then sms, en: email)",
        "3 Fri 2026-12-04 10:00 postnatal-check #1 questionnaire opens (postnatal-check; open until day 6 10:00)",
        "4 Sat 2026-12-05 10:00 postnatal-check #1 reminder (reminder 1, if still unanswered)",
        "6 Mon 2026-12-07 10:00 postnatal-check #1 expires (closes if unanswered: tag no-response)",
        "16 Thu 2026-12-17 11:00 phq9 #1 reminder (reminder 2, if still unanswered)",
        "38 Fri 2027-01-08 10:00 six-week-check-reminder message (zh-CN: wechat then sms, en: email)",
        "49 Tue 2027-01-19 10:00 satisfaction expires (closes if unanswered: call no-response-call)",
        "bleeding-advice message, by postnatal-check rule 1; postnatal-check-day14 rule 1",
        "no-response-call call, by satisfaction on_expire",
        "unreached-call call, by reach, when no channel reached the patient",
        "3 messages, 6 questionnaires (8 reminders); the last event on day 49 (Tue 2027-01-19).",
    ]:
        assert expected in lines, expected


def test_text_says_when_the_send_window_holds_a_touchpoint_back():
    lines = _lines(to_text(preview(SITE.load_pathway(POST_SURGERY), ANCHOR)))

    assert ("0 Tue 2026-12-01 09:00 discharge-instructions message "
            "(zh-CN: wechat then sms, en: email; held from day 0 02:00 by the send window)") in lines
    assert "1 Wed 2026-12-02 10:00 daily-check-in #1 message (zh-CN: wechat then sms, en: email)" in lines


def test_json_has_every_touchpoint_of_the_compiled_plan_in_the_patients_zone():
    pathway = SITE.load_pathway(POSTNATAL)
    data = json.loads(render(preview(pathway, ANCHOR, "Europe/London"), "json"))

    plan = compile_plan(pathway, ANCHOR, "Europe/London")
    started = [(e["step"], e["occurrence"]) for e in data["events"] if e["event"] in ("send", "open")]
    assert started == [(t.step_id, t.occurrence) for t in plan]
    assert data["timezone"] == "Europe/London" and all(e["at"].endswith("+00:00") for e in data["events"])
    phq9 = [w for w in data["questionnaire_windows"] if w["step"] == "phq9"]
    assert [(w["opens"], w["reminders"], w["expires"]) for w in phq9][0] == (
        "2026-12-15T11:00:00+00:00", ["2026-12-16T11:00:00+00:00", "2026-12-17T11:00:00+00:00"],
        "2026-12-19T11:00:00+00:00")
    assert data["on_demand"] == [{"step": "no-response-call", "kind": "call", "started_by": ["satisfaction on_expire"]},
                                 {"step": "unreached-call", "kind": "call",
                                  "started_by": ["reach, when no channel reached the patient"]},
                                 {"step": "bleeding-advice", "kind": "message",
                                  "started_by": ["postnatal-check rule 1", "postnatal-check-day14 rule 1"]}]
    assert [e["event"] for e in data["events"]].count("expire") == len(data["questionnaire_windows"]) == 6


def test_whole_days_keep_the_local_clock_across_a_dst_change():
    pathway = parse_pathway(
        "id: dst\nversion: 1\ntitle: DST\nanchor: a\nlocales: [en]\ntimezone: Europe/London\nsteps:\n"
        "  - kind: message\n    id: daily\n    at: day 1 10:00\n    repeat: {every: 1d, times: 3}\n"
        "    template: {en: {subject: Hi, body: Hello}}\n", "dst.yaml", SITE.instruments, SITE.teams())

    events = to_data(preview(pathway, date(2026, 3, 27)))["events"]  # clocks go forward on Sunday 29 March

    assert [(e["day"], e["time"], e["at"][-6:]) for e in events] == [
        (1, "10:00", "+00:00"), (2, "10:00", "+01:00"), (3, "10:00", "+01:00")]


def test_a_42_day_pathway_previews_in_well_under_100_ms():
    pathway = SITE.load_pathway(POSTNATAL)
    to_html(preview(pathway, ANCHOR))  # the template is compiled once per process
    runs = 20
    started = time.perf_counter()
    for _ in range(runs):
        for output_format in ("text", "json", "html"):
            render(preview(pathway, ANCHOR), output_format)
    each = (time.perf_counter() - started) / runs
    assert each < 0.1, f"text + json + html took {each * 1000:.1f} ms"


def test_html_is_self_contained_and_names_every_step():
    pathway = SITE.load_pathway(POSTNATAL)
    html = to_html(preview(pathway, ANCHOR))

    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "<style>" in html
    assert not re.search(r"<script|<link|@import|\bsrc=|url\(|https?://(?!www\.w3\.org/2000/svg)", html), \
        "the page must not fetch anything or run scripts"
    for step in pathway.steps:
        assert f">{step.id}</text>" in html, f"no lane for {step.id}"
        assert f'data-step="{step.id}"' in html, f"no table row for {step.id}"


def _carepath(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.cli", *arguments], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}, timeout=60)


def test_cli_preview_prints_text_and_writes_html(tmp_path: Path):
    text = _carepath("preview", str(POSTNATAL), "--anchor", "2026-12-01")
    page = tmp_path / "preview.html"
    html = _carepath("preview", str(POSTNATAL), "--anchor", "2026-12-01", "--tz", "Europe/London",
                     "--format", "html", "--output", str(page))

    assert text.returncode == 0, text.stderr
    assert _lines(text.stdout)[5].startswith("3 Fri 2026-12-04 10:00 postnatal-check #1 questionnaire opens")
    assert html.returncode == 0 and "written" in html.stdout
    assert "times in Europe/London" in page.read_text(encoding="utf-8")


@pytest.mark.parametrize(("arguments", "message"), [
    (["--anchor", "2026-02-30"], "is not a date"),
    (["--anchor", "2026-12-01", "--tz", "Mars/Olympus"], "is not an IANA time zone"),
    (["--anchor", "2026-12-01", "--format", "pdf"], "pdf"),
])
def test_cli_preview_refuses_bad_options_without_a_traceback(arguments: list[str], message: str):
    run = _carepath("preview", str(POSTNATAL), *arguments)
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr


def test_cli_preview_of_an_invalid_pathway_shows_its_problems():
    broken = REPO / "tests" / "language" / "validation" / "invalid" / "bad-at-expression.yaml"
    run = _carepath("preview", str(broken), "--anchor", "2026-12-01")
    assert run.returncode == 1 and f"{broken}:15:" in run.stderr
    assert "^" in run.stderr and run.stdout == ""
