"""The HTML preview as a reviewer sees it: rendered by headless Chromium, every step on the picture."""

from __future__ import annotations

import re
import struct
from datetime import date
from pathlib import Path

import pytest

from language.preview import preview, to_html
from services.settings import PROJECT_ROOT
from services.site import load_site

SITE = load_site(PROJECT_ROOT / "pathways")

REPO = Path(__file__).resolve().parents[2]
SHIPPED = [REPO / "pathways" / "postnatal-42d.yaml", REPO / "pathways" / "post-surgery-recovery.yaml"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
def test_the_rendered_preview_shows_every_step_its_events_and_a_legend(path: Path, chromium, tmp_path: Path):
    pathway = SITE.load_pathway(path)
    result = preview(pathway, date(2026, 12, 1))
    page = tmp_path / f"{path.stem}.html"
    page.write_text(to_html(result), encoding="utf-8")

    dom = chromium.dump_dom(page)

    svg = dom[dom.index("<svg"):dom.index("</figure>")]
    lanes = re.findall(r'<text class="lane-label"[^>]*>([^<]+)</text>', svg)
    assert sorted(lanes) == sorted(step.id for step in pathway.steps), "one lane per step"
    sends = sum(1 for e in result.events if e.event == "send")
    assert len(re.findall(r'<circle [^>]*r="6" fill="var\(--message\)"', svg)) == sends
    assert svg.count('rx="6" fill="var(--questionnaire)"') == len(result.windows)
    assert svg.count('stroke="#065f46"') == sum(len(w.reminders) for w in result.windows)
    for text in ["message sent", "questionnaire: opens, open, expires", "reminder, if still unanswered"]:
        assert text in dom, f"legend lacks {text!r}"
    rows = re.findall(r'<tr data-step="([^"]+)" data-event="([^"]+)"', dom)
    assert rows == [(e.step_id, e.event) for e in result.events], "the table lists every event in order"


def test_the_preview_screenshot_is_a_full_page_picture(chromium, tmp_path: Path):
    """Produces a PNG to look at (kept under pytest's tmp dir): checked here only for its size."""
    page = tmp_path / "postnatal.html"
    page.write_text(to_html(preview(SITE.load_pathway(SHIPPED[0]), date(2026, 12, 1))), encoding="utf-8")

    png = chromium.screenshot(page, tmp_path / "postnatal.png")

    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1200, 1400)
    assert png.stat().st_size > 50_000, "a blank page compresses to almost nothing"
