"""What a rule's `when:` can see, and whether it makes sense: checked when a pathway is validated.

A rule is written against a step's instrument: a questionnaire's answers and their score, band and
flags, or the values staff record on a call's form. A name the instrument cannot produce, a band or
flag it never gives, a tag no action sets, a bare number where a sourced parameter belongs, and a
rule no possible answer can match are all mistakes an author cannot see by reading the file; each
is refused at its line, with the fix.
"""

from __future__ import annotations

import ast
import difflib
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from language.expressions import RESPONSE_NAMES, evaluate, expression_problems, names_in
from language.instruments.model import (
    Instrument,
    Item,
    NumberItem,
    ScaleItem,
    SingleChoiceItem,
    YesNoItem,
)

MAX_COMBINATIONS = 20_000
"""Beyond this many combinations of candidate values, whether a rule can match is not decided."""


@dataclass(frozen=True)
class RuleScope:
    """What the rules of one step can name: its instrument's values, the pathway's parameters and tags."""

    kind: str  # "questionnaire" (a response's score, band, flags and items), "call" (staff's values) or "event"
    instrument: Instrument | None
    parameters: Mapping[str, float | int]
    tags: frozenset[str]  # the tags some action of the pathway sets
    fields: Mapping[str, Item] | None = None  # an event's values, as the items of an instrument would be

    def items(self) -> dict[str, Item]:
        if self.fields is not None:
            return dict(self.fields)
        if self.instrument is None:
            return {}
        return {item.id: item for item in self.instrument.items if item.kind != "free_text"}

    def names(self) -> set[str]:
        response = set(RESPONSE_NAMES) if self.kind == "questionnaire" else {"tags"}
        return response | set(self.parameters) | set(self.items())


def rule_problems(expression: str, scope: RuleScope) -> list[str]:
    """Why this `when:` cannot stand, each with what to write instead; empty if it can."""
    problems, unavailable = _unavailable_names(expression, scope)
    problems += expression_problems(expression, scope.names() | unavailable)
    if problems:
        return problems
    tree = ast.parse(expression.strip(), mode="eval")
    for left, operator, right in _comparisons(tree):
        problems += _comparison_problems(left, operator, right, scope)
    if problems:
        return problems
    return _never_matches(expression, tree, scope)


def _unavailable_names(expression: str, scope: RuleScope) -> tuple[list[str], set[str]]:
    """Names that are real words of the language, but that this step's instrument cannot give."""
    try:
        used = names_in(expression)
    except SyntaxError:
        return [], set()
    instrument, problems, reported = scope.instrument, [], set()
    if scope.kind == "call" and instrument is None:
        unknown = sorted(used - scope.names() - {"True", "False", "None"})
        if unknown:
            known = ", ".join(sorted(scope.parameters)) or "none"
            problems.append(f"{', '.join(repr(name) for name in unknown)}: a call without `instrument:` records no "
                            f"values, so its rules may use only tags and parameters (declared: {known}); give the "
                            "call the instrument whose form staff fill in, e.g. instrument: blood-pressure")
            reported |= set(unknown)
    if instrument is None or scope.kind != "questionnaire":
        return problems, reported
    items = ", ".join(list(scope.items())[:3]) + (", ..." if len(scope.items()) > 3 else "")
    if "score" in used and instrument.scoring.total is None:
        problems.append(f"{instrument.id} has no total score; compare its items ({items}) instead")
        reported.add("score")
    if "band" in used and not instrument.scoring.bands:
        problems.append(f"{instrument.id} has no bands; compare its items ({items}) instead")
        reported.add("band")
    return problems, reported


_SYMBOLS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
            ast.In: "in", ast.NotIn: "not in"}
_MIRRORED = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE}


def _comparisons(tree: ast.AST) -> Iterable[tuple[ast.expr, type, ast.expr]]:
    """Each comparison as (left, operator, right); `a < b < c` gives two."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for index, operator in enumerate(node.ops):
                yield operands[index], type(operator), operands[index + 1]


def _number(node: ast.expr) -> float | int | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _number(node.operand)
        return -value if value is not None else None
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    return None


def _words(node: ast.expr) -> list[str] | None:
    """The text constants of `'x'` or `('x', 'y')`; None for anything else."""
    parts = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    if all(isinstance(part, ast.Constant) and isinstance(part.value, str) for part in parts):
        return [part.value for part in parts]
    return None


def _comparison_problems(left: ast.expr, operator: type, right: ast.expr, scope: RuleScope) -> list[str]:
    if not isinstance(left, ast.Name) and isinstance(right, ast.Name) and operator not in (ast.In, ast.NotIn):
        left, operator, right = right, _MIRRORED.get(operator, operator), left  # `7 <= pain` reads as `pain >= 7`
    if isinstance(left, ast.Name) and (number := _number(right)) is not None:
        return _threshold_problems(left.id, operator, number, scope)
    if isinstance(right, ast.Name) and operator in (ast.In, ast.NotIn) and (words := _words(left)) is not None:
        return [problem for word in words if (problem := _membership_problem(word, right.id, scope))]
    if isinstance(left, ast.Name) and (words := _words(right)) is not None:
        return [problem for word in words if (problem := _value_problem(left.id, word, scope))]
    return []


def _threshold_problems(name: str, operator: type, number: float | int, scope: RuleScope) -> list[str]:
    item = scope.items().get(name)
    if isinstance(item, SingleChoiceItem) and item.scored and number in {o.score for o in item.options}:
        return []  # one of the item's own answers (q9 >= 1), not a threshold
    if name not in scope.items() and name != "score" and name not in scope.parameters:
        return []
    parameter = f"{scope.instrument.id.replace('-', '_')}_threshold" if name == "score" and scope.instrument else (
        f"{name}_threshold")
    return [f"a threshold must be a named parameter with a source: add `parameters: {{{parameter}: {{value: "
            f"{number}, source: ...}}}}` and write `{name} {_SYMBOLS[operator]} {parameter}`"]


def _membership_problem(word: str, collection: str, scope: RuleScope) -> str:
    if collection == "flags" and scope.instrument is not None:
        flags = list(scope.instrument.scoring.flags)
        if word not in flags:
            return _not_one_of(f"{scope.instrument.id} never sets flag '{word}'", word, flags, "its flags")
    if collection == "tags" and word not in scope.tags:
        return _not_one_of(f"no rule, on_expire or on_not_reached of this pathway tags '{word}'", word,
                           sorted(scope.tags), "tags it sets")
    return ""


def _value_problem(name: str, word: str, scope: RuleScope) -> str:
    if name == "band" and scope.instrument is not None:
        bands = [band.id for band in scope.instrument.scoring.bands]
        if word not in bands:
            return _not_one_of(f"'{word}' is not a band of {scope.instrument.id}", word, bands, "its bands")
    item = scope.items().get(name)
    if isinstance(item, SingleChoiceItem) and not item.scored:
        options = [option.id for option in item.options]
        if word not in options:
            return _not_one_of(f"'{word}' is not an answer of {name}", word, options, "its options")
    return ""


def _not_one_of(problem: str, word: str, known: list[str], what: str) -> str:
    hint = difflib.get_close_matches(word, known, n=1)
    return f"{problem}; " + (f"did you mean '{hint[0]}'?" if hint else f"{what}: {', '.join(known) or 'none'}")


# --- Rules that can never match -------------------------------------------------------------------


def _never_matches(expression: str, tree: ast.AST, scope: RuleScope) -> list[str]:
    """Evaluate the rule over the values that decide it: if none matches, no response ever will."""
    if any(isinstance(node, ast.BinOp) for node in ast.walk(tree)):
        return []  # arithmetic (score - q9 >= x) can need values between those tried: not decided
    used = sorted(names_in(expression) - {"True", "False", "None"})
    numbers = [value for node in ast.walk(tree) if (value := _number(node)) is not None]
    thresholds = [scope.parameters[name] for name in used if name in scope.parameters] + numbers
    words = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    candidates = [_candidates(name, scope, thresholds, words) for name in used]
    if None in candidates or math.prod(len(values) for values in candidates) > MAX_COMBINATIONS:
        return []
    for combination in itertools.product(*candidates):
        try:
            if evaluate(expression, dict(zip(used, combination))):
                return []
        except Exception:  # None >= 7 and the like: at run time, too, such a rule does not match
            continue
    # What the values can be, then what they are compared with: "the total runs from 0 to 27 and x is 30".
    ranges = " and ".join(part for name in sorted(used, key=lambda name: name in scope.parameters)
                          if (part := _described(name, scope)))
    return [f"this rule can never match: {ranges or 'no possible values make it true'}; "
            "check the comparison and the parameters' values"]


def _candidates(name: str, scope: RuleScope, thresholds: list[float | int], words: set[str]) -> list[Any] | None:
    """A few values of `name` that decide every comparison the rule can make with the thresholds
    and the words it tests (None: too many to try)."""
    instrument = scope.instrument
    if name in scope.parameters:
        return [scope.parameters[name]]
    if name in ("tags", "flags"):
        # Only membership of the words the rule names can matter: every subset of those.
        settable = scope.tags if name == "tags" else set(instrument.scoring.flags if instrument else ())
        named = sorted(settable & words)
        if 2 ** len(named) > MAX_COMBINATIONS:
            return None
        return [list(subset) for size in range(len(named) + 1) for subset in itertools.combinations(named, size)]
    if name == "band":
        return [band.id for band in instrument.scoring.bands] if instrument else [None]
    if name == "score":
        total = instrument.total_range() if instrument else None
        return _around(total, thresholds, 1) if total else [None]
    item = scope.items()[name]
    if isinstance(item, YesNoItem):
        return [True, False]
    if isinstance(item, SingleChoiceItem):
        return [option.score if item.scored else option.id for option in item.options]
    if isinstance(item, ScaleItem):
        return _around((item.min, item.max), thresholds, 1)
    if isinstance(item, NumberItem):
        return _around((item.min, item.max), thresholds, 10 ** -item.decimals)
    return [None]


def _around(bounds: tuple[float, float], thresholds: list[float | int], step: float) -> list[float | int]:
    """Both ends of a range, and each threshold within it with its neighbours one step either side."""
    low, high = bounds
    near = {low, high} | {value + offset for value in thresholds for offset in (-step, 0, step)}
    return sorted(value for value in near if low <= value <= high)


def _described(name: str, scope: RuleScope) -> str:
    instrument, item = scope.instrument, scope.items().get(name)
    if name in scope.parameters:
        return f"{name} is {scope.parameters[name]:g}"
    if name == "score" and instrument and (total := instrument.total_range()):
        return f"{instrument.id}'s total runs from {total[0]} to {total[1]}"
    if isinstance(item, (ScaleItem, NumberItem)):
        return f"{name} runs from {item.min:g} to {item.max:g}"
    if isinstance(item, SingleChoiceItem) and item.scored and (points := item.point_range()):
        return f"{name} scores {points[0]} to {points[1]}"
    return ""
