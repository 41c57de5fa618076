"""Which values a step's rules read: a response or a call outcome carries those to its workflow, and
no others. The workflow's input and updates are kept in Temporal's history for as long as the
enrollment runs; an answer no rule compares has no reason to be there (it stays in the database).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from language.expressions import names_in
from language.model import Pathway

V = TypeVar("V")


def names_read(pathway: Pathway, step_id: str | None = None) -> frozenset[str]:
    """Every name the `when:` of a step's rules uses (items, score, flags, tags, parameters alike);
    of every step when `step_id` is None."""
    steps = pathway.steps if step_id is None else [pathway.step(step_id)]
    names: set[str] = set()
    for step in steps:
        for rule in getattr(step, "on", ()):
            try:
                names |= names_in(rule.when)
            except SyntaxError:  # validation refuses these; such a rule cannot decide anything anyway
                continue
    return frozenset(names)


def values_read(pathway: Pathway, step_id: str, values: Mapping[str, V]) -> dict[str, V]:
    """The values the step's rules read, an unanswered item (None) included so a rule on it still sees it."""
    read = names_read(pathway, step_id)
    return {name: value for name, value in values.items() if name in read}
