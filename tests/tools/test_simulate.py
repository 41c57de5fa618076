"""`carepath simulate` as a user runs it: a subprocess on the time-skipping server."""

import json
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CARE = [sys.executable, "-m", "tools.cli"]
# Ahead of today, always: touchpoints already past when a patient is enrolled are skipped.
ANCHOR = date.today() + timedelta(days=7)


def _simulate(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CARE, "simulate", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_simulate_json_lists_every_delivery_of_the_shipped_post_surgery_pathway():
    # Nobody records attendance at the day-10 video follow-up: the ward's call about it is reached.
    run = _simulate("pathways/post-surgery-recovery.yaml", "--anchor", ANCHOR.isoformat(), "--json", "--calls", "reached")

    assert run.returncode == 0, run.stderr
    deliveries = json.loads(run.stdout)
    scheduled = [d for d in deliveries if d["purpose"] == "scheduled"]
    assert [d["step"] for d in scheduled] == (
        ["discharge-instructions"] + ["daily-check-in"] * 2 + ["wound-care"] + ["daily-check-in"] * 5
        + ["two-weeks", "thirty-days"])
    dues = [datetime.fromisoformat(d["due"]) for d in scheduled]
    assert all(due.utcoffset().total_seconds() == 8 * 3600 for due in dues)  # Asia/Shanghai, the pathway's zone
    assert dues[0].isoformat() == f"{ANCHOR}T09:00:00+08:00"  # day 0 +2h = 02:00, held until the window opens
    assert dues[-1].isoformat() == f"{ANCHOR + timedelta(days=30)}T10:00:00+08:00"
    # The simulated patient speaks the pathway's first language, zh-CN, which its `reach` sends by WeChat first.
    assert {d["channel"] for d in deliveries} == {"wechat"} and all(d["subject"] for d in deliveries)
    invitations = [d for d in deliveries if d["purpose"] == "invitation"]
    assert [d["step"] for d in invitations] == ["postop-check"] * 3 + ["postop-check-weekly"] * 2 + ["satisfaction"]
    visit_reminders = [datetime.fromisoformat(d["due"]) for d in deliveries if d["step"] == "video-follow-up"]
    assert [due.isoformat() for due in visit_reminders] == [f"{ANCHOR + timedelta(days=9)}T15:00:00+08:00",
                                                            f"{ANCHOR + timedelta(days=10)}T14:00:00+08:00"]


def test_simulate_with_answers_shows_the_branch_each_answer_took(tmp_path):
    answers = tmp_path / "answers.yaml"
    answers.write_text(
        "postop-check:\n"
        "  - after: 1h\n"
        "    answers: {pain: 8, temperature: 37.0, wound_redness: 'no', wound_swelling: 'no', wound_discharge: 'no',\n"
        "              wound_opening: 'no', bleeding: 'no', breathing_or_chest_pain: 'yes', calf_pain_or_swelling: 'no',\n"
        "              vomiting: 'no', anything_else: 'it hurts'}\n"
        "  - no answer\n", encoding="utf-8")

    run = _simulate("pathways/post-surgery-recovery.yaml", "--anchor", ANCHOR.isoformat(), "--answers", str(answers),
                    "--locale", "en")

    assert run.returncode == 0, run.stderr
    assert ("postop-check#1: answered, flags severe_pain, chest_symptoms -> send urgent-symptoms-advice; "
            "escalate 'Severe pain (7 or more out of 10) after surgery'; "
            "escalate 'Chest pain, breathlessness or calf pain after surgery'") in run.stdout
    assert "postop-check#2: expired" in run.stdout
    assert "Please seek care now" in run.stdout


def test_simulate_refuses_a_malformed_answers_file(tmp_path):
    answers = tmp_path / "answers.yaml"
    answers.write_text("postop-check: {pain: 3}\n", encoding="utf-8")

    run = _simulate("pathways/post-surgery-recovery.yaml", "--anchor", ANCHOR.isoformat(), "--answers", str(answers))

    assert run.returncode == 2 and "one entry per occurrence" in run.stderr


POSTNATAL = "pathways/postnatal-42d.yaml"
# The day-42 questionnaire expires at day 49 10:00 (the pathway's zone); no answer opens the call.
CALL_OPENS = f"{ANCHOR + timedelta(days=49)} 10:00"


def test_simulate_stops_where_the_pathway_waits_for_staff_and_says_for_what():
    run = _simulate(POSTNATAL, "--anchor", ANCHOR.isoformat())

    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == f"waiting for staff: call no-response-call #1, opened {CALL_OPENS}"
    assert "enrollment active; tags: no-response" in run.stdout
    assert "satisfaction#1: expired" in run.stdout


def test_simulate_with_every_call_reached_runs_to_the_end():
    run = _simulate(POSTNATAL, "--anchor", ANCHOR.isoformat(), "--calls", "reached")

    assert run.returncode == 0, run.stderr
    assert "no-response-call#1: reached after 1 attempt(s)" in run.stdout
    assert "enrollment completed" in run.stdout and "waiting for staff" not in run.stdout


def test_simulate_with_a_calls_file_plays_each_attempt(tmp_path):
    calls = tmp_path / "calls.yaml"
    calls.write_text("no-response-call:\n  - not_reached\n"
                     "  - {outcome: reached, after: 2h, values: {systolic: 150, diastolic: 80}}\n", encoding="utf-8")

    run = _simulate(POSTNATAL, "--anchor", ANCHOR.isoformat(), "--calls", str(calls))

    assert run.returncode == 0, run.stderr
    assert "no-response-call#1: reached after 2 attempt(s)" in run.stdout
    assert "escalation: high: Raised blood pressure after birth (140/90 or more)" in run.stdout
    assert "enrollment completed" in run.stdout


def test_simulate_refuses_a_malformed_calls_file(tmp_path):
    calls = tmp_path / "calls.yaml"
    calls.write_text("no-response-call: [maybe]\n", encoding="utf-8")

    run = _simulate(POSTNATAL, "--anchor", ANCHOR.isoformat(), "--calls", str(calls))

    assert run.returncode == 2 and "no-response-call attempt 1: expected reached, not_reached" in run.stderr


def test_an_answer_the_instrument_refuses_fails_in_one_line_naming_the_step(tmp_path):
    answers = tmp_path / "answers.yaml"
    answers.write_text("postnatal-check:\n  - {after: 1h, answers: {temperature: 99}}\n", encoding="utf-8")

    run = _simulate(POSTNATAL, "--anchor", ANCHOR.isoformat(), "--answers", str(answers))

    assert run.returncode == 1 and "Traceback" not in run.stderr
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(f"{POSTNATAL}: postnatal-check#1: the answers were refused: ") and "temperature" in line


def test_a_call_value_the_form_refuses_fails_in_one_line_naming_the_call(tmp_path):
    calls = tmp_path / "calls.yaml"
    calls.write_text("no-response-call: [{outcome: reached, values: {systolic: 999}}]\n", encoding="utf-8")

    run = _simulate(POSTNATAL, "--anchor", ANCHOR.isoformat(), "--calls", str(calls))

    assert run.returncode == 1 and "Traceback" not in run.stderr
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(f"{POSTNATAL}: no-response-call#1: some values do not fit the blood-pressure form; systolic: enter a number")


CHANNELS_PATHWAY = """\
id: channels-simulated
version: 1
title: Home after delivery
anchor: delivery_date
timezone: Asia/Shanghai
locales: [zh-CN]
steps:
  - kind: message
    id: welcome
    at: day 1 10:00
    channel: wechat
    template:
      zh-CN:
        subject: 欢迎回家
        body: 欢迎回家
        wechat: {template_id: ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY, fields: {first: 欢迎回家, remark: 如有不适请致电病房}}
  - kind: questionnaire
    id: check-in
    instrument: phq-9
    at: day 2 10:00
    expire: 24h
    channel: sms
    template:
      zh-CN: {subject: 近况问卷, body: "请填写：{{ link }}", sms: {text: "请填写问卷：{{ link }}"}}
  - kind: message
    id: app-tip
    at: day 3 10:00
    channel: push
    template:
      zh-CN: {subject: 今日提示, body: 多喝水，注意休息。}
"""


def test_simulate_shows_the_channel_of_every_touchpoint_and_what_the_patient_sees_on_it(tmp_path):
    pathway = tmp_path / "channels-simulated.yaml"
    pathway.write_text(CHANNELS_PATHWAY, encoding="utf-8")

    run = _simulate(str(pathway), "--anchor", ANCHOR.isoformat(), "--json")

    assert run.returncode == 0, run.stderr
    shown = [(d["step"], d["purpose"], d["channel"]) for d in json.loads(run.stdout)]
    assert shown == [("welcome", "scheduled", "wechat"), ("check-in", "invitation", "sms"),
                     ("app-tip", "scheduled", "push")]
    subjects = {d["channel"]: d["subject"] for d in json.loads(run.stdout)}
    assert subjects["wechat"] == "欢迎回家 / 如有不适请致电病房" and subjects["push"] == "今日提示"
    assert subjects["sms"].startswith("请填写问卷：http")

    printed = _simulate(str(pathway), "--anchor", ANCHOR.isoformat())
    assert printed.returncode == 0, printed.stderr
    assert [line.split()[3] for line in printed.stdout.splitlines()[:3]] == ["wechat", "sms", "push"]
