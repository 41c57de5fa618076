"""The cohort chart's geometry: days across, the instrument's whole range of totals up the side."""

from __future__ import annotations

from api.console.cohort_chart import (
    BOTTOM,
    HEIGHT,
    LEFT,
    RIGHT,
    TOP,
    WIDTH,
    cohort_charts,
)
from services.reports import CohortPoint


def test_each_instrument_gets_its_own_chart_scaled_to_its_possible_totals(shipped):
    points = [CohortPoint("phq-9", -1, 2, 27.0), CohortPoint("phq-9", 20, 5, 0.0), CohortPoint("phq-9", 6, 1, 13.5),
              CohortPoint("unknown-instrument", 3, 1, 4.0)]

    phq9, unknown = cohort_charts(points, shipped, "zh-CN")

    assert phq9.title == shipped["phq-9"].title["zh-CN"]
    first, middle, last = phq9.marks
    assert (first.x, first.y) == (LEFT, TOP), "day -1 at the left, the highest total (27) at the top"
    assert (last.x, last.y) == (WIDTH - RIGHT, HEIGHT - BOTTOM), "day 20 at the right, 0 at the bottom"
    assert middle.y == (TOP + HEIGHT - BOTTOM) / 2
    assert [tick.label for tick in phq9.x_ticks] == ["0", "7", "14"], "a week apart over more than two weeks"
    assert [tick.label for tick in phq9.y_ticks] == ["0", "6", "12", "18", "24"]
    assert phq9.line == f"{first.x},{first.y} {middle.x},{middle.y} {last.x},{last.y}", "by day, whatever the input order"
    assert unknown.title == "unknown-instrument" and [tick.label for tick in unknown.y_ticks] == ["0", "1", "2", "3", "4"]
