"""Line charts of an enrollment's scores and values, as SVG drawn on the server: no script, and it
prints as sharply as the text around it. Each chart draws the pathway's thresholds for that value:
the parameters its step's rules compare it with (`score >= phq9_referral_score`)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from markupsafe import Markup, escape

from language.model import Pathway
from services.history import Point

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 640, 220, 48, 16, 16, 36


@dataclass(frozen=True)
class Chart:
    step_id: str
    name: str
    points: list[Point]
    thresholds: dict[str, float]  # parameter name → value

    def svg(self, title: str, shown_time) -> Markup:
        values = [point.value for point in self.points] + list(self.thresholds.values())
        low, high = min(values), max(values)
        pad = (high - low) * 0.1 or 1
        low, high = low - pad, high + pad
        times = [point.at.timestamp() for point in self.points]
        first, last = min(times), max(times)
        span = (last - first) or 1

        def x(at: datetime) -> float:
            return LEFT + (at.timestamp() - first) / span * (WIDTH - LEFT - RIGHT) if last > first else WIDTH / 2

        def y(value: float) -> float:
            return TOP + (high - value) / (high - low) * (HEIGHT - TOP - BOTTOM)

        parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
                  f'aria-labelledby="chart-{escape(self.step_id)}-{escape(self.name)}">'),
                 f'<title id="chart-{escape(self.step_id)}-{escape(self.name)}">{escape(title)}</title>',
                 f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" stroke="#767676"/>',
                 f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#767676"/>',
                 f'<text x="4" y="{TOP + 4}" font-size="11">{round(high, 1):g}</text>',
                 f'<text x="4" y="{HEIGHT - BOTTOM}" font-size="11">{round(low, 1):g}</text>']
        for name, value in self.thresholds.items():
            parts.append(f'<line class="threshold" data-parameter="{escape(name)}" x1="{LEFT}" y1="{y(value):.1f}" '
                         f'x2="{WIDTH - RIGHT}" y2="{y(value):.1f}" stroke="#b00020" stroke-dasharray="6 4"/>'
                         f'<text x="{WIDTH - RIGHT - 4}" y="{y(value) - 4:.1f}" font-size="11" text-anchor="end" '
                         f'fill="#b00020">{escape(name)} {value:g}</text>')
        line = " ".join(f"{x(point.at):.1f},{y(point.value):.1f}" for point in self.points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="#005eb8" stroke-width="2"/>')
        for point in self.points:
            parts.append(f'<circle class="point" cx="{x(point.at):.1f}" cy="{y(point.value):.1f}" r="4" fill="#005eb8">'
                         f'<title>{escape(shown_time(point.at))}: {point.value:g}</title></circle>')
        parts.append(f'<text x="{LEFT}" y="{HEIGHT - 8}" font-size="11">{escape(shown_time(self.points[0].at))}</text>')
        if len(self.points) > 1:
            parts.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" font-size="11" text-anchor="end">'
                         f'{escape(shown_time(self.points[-1].at))}</text>')
        parts.append("</svg>")
        return Markup("".join(parts))


def thresholds(pathway: Pathway, step_id: str, name: str) -> dict[str, float]:
    """The parameters that a rule of the step compares `name` with, comparison by comparison: in
    `systolic >= bp_systolic_mmhg or diastolic >= bp_diastolic_mmhg`, systolic's threshold is the first only."""
    try:
        step = pathway.step(step_id)
    except StopIteration:  # values of a step a later version dropped
        return {}
    found: dict[str, float] = {}
    for rule in getattr(step, "on", ()):
        try:
            tree = ast.parse(rule.when.strip(), mode="eval")
        except SyntaxError:
            continue
        for comparison in (node for node in ast.walk(tree) if isinstance(node, ast.Compare)):
            compared = {node.id for node in ast.walk(comparison) if isinstance(node, ast.Name)}
            if name in compared:
                found |= {parameter: float(pathway.parameters[parameter].value)
                          for parameter in sorted(compared & set(pathway.parameters))}
    return found


def charts(pathway: Pathway, points: list[Point]) -> list[Chart]:
    """One chart per step and value, in the order `services.history.measurements` gives them."""
    return [Chart(step_id, name, list(group), thresholds(pathway, step_id, name))
            for (step_id, name), group in groupby(points, key=lambda point: (point.step_id, point.name))]
