"""The cohort chart: each instrument's mean score by days since the anchor, as inline SVG geometry.

Server-drawn, like the pathway preview: it prints, needs no script, and reads the same in every browser.
One small chart per instrument, because their scales differ (PHQ-9 0-27, a pain score 0-10).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from language.instruments.model import Instrument
from services.reports import CohortPoint

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 16, 12, 34


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    point: CohortPoint


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class CohortChart:
    instrument_id: str
    title: str
    marks: list[Mark]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM

    @property
    def line(self) -> str:
        return " ".join(f"{mark.x},{mark.y}" for mark in self.marks)


def cohort_charts(points: list[CohortPoint], instruments: Mapping[str, Instrument], locale: str) -> list[CohortChart]:
    by_instrument: dict[str, list[CohortPoint]] = {}
    for point in points:
        by_instrument.setdefault(point.instrument_id, []).append(point)
    return [_chart(instrument_id, mine, instruments.get(instrument_id), locale)
            for instrument_id, mine in sorted(by_instrument.items())]


def _chart(instrument_id: str, points: list[CohortPoint], instrument: Instrument | None, locale: str) -> CohortChart:
    """The y axis spans the instrument's possible totals, so that two periods' charts compare at a glance."""
    points = sorted(points, key=lambda point: point.day)  # the line runs left to right
    total = instrument.total_range() if instrument else None
    low, high = total if total else (0, math.ceil(max(point.mean_score for point in points)) or 1)
    first, last = min(point.day for point in points), max(point.day for point in points)
    span = max(last - first, 1)

    def x(day: int) -> float:
        return round(LEFT + (day - first) / span * (WIDTH - LEFT - RIGHT), 1)

    def y(value: float) -> float:
        return round(HEIGHT - BOTTOM - (value - low) / (high - low or 1) * (HEIGHT - TOP - BOTTOM), 1)

    every = 1 if span <= 14 else 7
    step = max(1, math.ceil((high - low) / 5))
    title = (instrument.title.get(locale) or next(iter(instrument.title.values()))) if instrument else instrument_id
    return CohortChart(instrument_id, title, [Mark(x(point.day), y(point.mean_score), point) for point in points],
                       [Tick(x(day), str(day)) for day in range(first, last + 1) if day % every == 0],
                       [Tick(y(value), str(value)) for value in range(low, high + 1, step)])
