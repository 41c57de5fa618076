"""Scoring a complete set of answers: total, band, flags, item values. Never free text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from language import expressions
from language.instruments.model import Instrument, Number

class ScoreResult(BaseModel):
    """What scoring tells the workflow. No free text: it must never enter workflow history."""

    model_config = ConfigDict(frozen=True)

    instrument: str = Field(description="the instrument's id")
    version: int = Field(description="the instrument's version")
    total: int | None = Field(description="the sum of the scored items, if the instrument has a total")
    band: str | None = Field(description="id of the band the total falls in")
    band_label: str | None = Field(description="the band's label in the requested locale")
    flags: list[str] = Field(description="names of the flags raised, in the instrument's order")
    items: dict[str, bool | int | float | str] = Field(
        description="per answered item: the score of scored items, the value of scales, numbers and yes/no, the "
                    "option id of unscored choices; free text never")
    categories: dict[str, str] = Field(description="item id -> category id, for items with categories")


class AnswersInvalid(ValueError):
    """Answers that cannot be scored, with the message for each item."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{item}: {message}" for item, message in errors.items()))


def score(instrument: Instrument, answers: Mapping[str, object], *, locale: str | None = None,
          parameters: Mapping[str, Number] | None = None) -> ScoreResult:
    """Score a complete set of answers; raises AnswersInvalid if validate_answers finds anything.

    `parameters` overrides the instrument's named thresholds (a pathway's own cut-offs, say);
    `locale` chooses the band label's language (default: the instrument's first locale).
    """
    answered, errors = instrument._read(answers)
    if errors:
        raise AnswersInvalid(errors)
    unknown = sorted(set(parameters or {}) - set(instrument.scoring.parameters))
    if unknown:
        raise ValueError(f"unknown parameters for {instrument.id}: {', '.join(unknown)}")
    items = {item.id: value for item in instrument.items if item.id in answered
             and (value := item.value(answered[item.id])) is not None}
    total = None
    if instrument.scoring.total == "sum":
        total = sum(points for item in instrument.items
                    if item.id in answered and (points := item.points(answered[item.id])) is not None)
    band = next((b for b in instrument.scoring.bands if total is not None and b.min <= total <= b.max), None)
    names: dict[str, Any] = {name: p.value for name, p in instrument.scoring.parameters.items()}
    names.update(parameters or {})
    names.update(items)
    if total is not None:
        names["total"] = total
    # A flag whose condition names an unanswered item is not raised: missing is not abnormal.
    flags = [name for name, condition in instrument.scoring.flags.items()
             if expressions.names_in(condition) <= names.keys() and expressions.evaluate(condition, names) is True]
    categories = {item.id: category for item in instrument.items if item.id in answered
                  and (category := item.category(answered[item.id])) is not None}
    return ScoreResult(
        instrument=instrument.id, version=instrument.version, total=total,
        band=band.id if band else None,
        band_label=band.label.get(locale or instrument.locales[0]) if band else None,
        flags=flags, items=items, categories=categories,
    )

