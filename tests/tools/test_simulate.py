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
    run = _simulate("pathways/post-surgery-recovery.yaml", "--anchor", ANCHOR.isoformat(), "--json")

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
    assert {d["channel"] for d in deliveries} == {"email"} and all(d["subject"] for d in deliveries)
    invitations = [d for d in deliveries if d["purpose"] == "invitation"]
    assert [d["step"] for d in invitations] == ["postop-check"] * 3 + ["postop-check-weekly"] * 2 + ["satisfaction"]


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
