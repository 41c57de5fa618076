"""The enrollment page's charts: one per step and value, with the thresholds its rules compare it with."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from api.console.charts import charts, thresholds
from api.console.pages import shown_time
from services.history import Point
from services.settings import PROJECT_ROOT
from services.site import load_site

SITE = load_site(PROJECT_ROOT / "pathways")
POSTNATAL = SITE.load_pathway(PROJECT_ROOT / "pathways" / "postnatal-42d.yaml")


def test_each_value_gets_the_thresholds_it_is_compared_with_and_no_others():
    assert thresholds(POSTNATAL, "phq9", "score") == {"phq9_referral_score": 10.0}
    assert thresholds(POSTNATAL, "no-response-call", "systolic") == {"bp_systolic_mmhg": 140.0}
    assert thresholds(POSTNATAL, "no-response-call", "diastolic") == {"bp_diastolic_mmhg": 90.0}
    assert thresholds(POSTNATAL, "phq9", "q1") == {}
    assert thresholds(POSTNATAL, "a-step-a-later-version-dropped", "score") == {}


def test_a_chart_draws_every_point_and_its_threshold_in_the_svg():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    points = [Point("phq9", "score", start + timedelta(days=day), score) for day, score in ((0, 6), (14, 15), (28, 9))]

    [chart] = charts(POSTNATAL, points)
    svg = str(chart.svg("PHQ-9 <total>", shown_time))

    assert svg.count('class="point"') == 3
    assert svg.count('class="threshold" data-parameter="phq9_referral_score"') == 1
    assert "PHQ-9 &lt;total&gt;" in svg, "text is escaped"
    heights = [float(value) for value in re.findall(r'class="point" cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert heights[1] < heights[0] and heights[1] < heights[2], "the highest score is drawn highest"
