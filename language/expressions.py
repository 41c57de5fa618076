"""Rule expressions (`score >= 10 or 'self_harm' in flags`): checked when a pathway is validated,
evaluated deterministically inside the workflow. simpleeval, never Python's eval."""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from simpleeval import EvalWithCompoundTypes

# Values every questionnaire rule can use, besides the instrument's own item ids.
RESPONSE_NAMES = {
    "score": "the instrument's total score (none if it has no total)",
    "band": "the id of the band the score falls in, e.g. 'moderate'",
    "flags": "the instrument's flags raised by this response, e.g. 'self_harm' in flags",
    "tags": "the enrollment's tags so far, e.g. 'mood-risk' in tags",
}


_FORBIDDEN_NODES = (ast.Call, ast.Attribute, ast.Subscript, ast.Lambda, ast.NamedExpr, ast.comprehension)


def names_in(expression: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(expression.strip(), mode="eval")) if isinstance(node, ast.Name)}


def expression_problems(expression: str, allowed: Iterable[str]) -> list[str]:
    """Why an expression cannot be used with these names, or nothing if it can."""
    allowed = set(allowed) | {"True", "False", "None"}
    try:
        used = names_in(expression)
    except SyntaxError as error:
        return [f"expression does not parse: {error.msg} (column {error.offset})"]
    problems = []
    for name in sorted(used - allowed):
        hint = difflib.get_close_matches(name, sorted(allowed), n=1)
        problems.append(f"unknown name '{name}' in expression" + (f"; did you mean '{hint[0]}'?" if hint else
                        f"; available: {', '.join(sorted(allowed - {'True', 'False', 'None'}))}"))
    tree = ast.parse(expression.strip(), mode="eval")
    if any(isinstance(node, _FORBIDDEN_NODES) for node in ast.walk(tree)):
        problems.append("expressions compare values (score >= 10, 'x' in flags, and/or/not); "
                        "function calls, attributes, subscripts and lambdas are not allowed")
    return problems


def evaluate(expression: str, names: Mapping[str, Any]) -> Any:
    """Evaluate with exactly these names and no functions; raises on type errors (e.g. None >= 7)."""
    return EvalWithCompoundTypes(names=dict(names), functions={}).eval(expression.strip())
