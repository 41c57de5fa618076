"""Rule expressions (`score >= 10 or 'self_harm' in flags`): checked when a pathway is validated,
evaluated deterministically inside the workflow. simpleeval, never Python's eval."""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from simpleeval import DEFAULT_OPERATORS, EvalWithCompoundTypes

# Values every questionnaire rule can use, besides the instrument's own item ids.
RESPONSE_NAMES = {
    "score": "the instrument's total score (none if it has no total)",
    "band": "the id of the band the score falls in, e.g. 'moderate'",
    "flags": "the instrument's flags raised by this response, e.g. 'self_harm' in flags",
    "tags": "the enrollment's tags so far, e.g. 'mood-risk' in tags",
}


_FORBIDDEN_NODES = (ast.Call, ast.Attribute, ast.Subscript, ast.Lambda, ast.NamedExpr, ast.comprehension)
# Operators that can make a number or a text grow without bound (9 ** 3999999, 1 << 10**8): a rule
# compares values, and these would stall the workflow that evaluates it.
_UNBOUNDED_OPERATORS = (ast.Pow, ast.LShift, ast.RShift, ast.BitAnd, ast.BitOr, ast.BitXor, ast.Invert)
MAXIMUM_LENGTH = 500


def _multiply_numbers(left: Any, right: Any) -> Any:
    """`*` for numbers only: 'a' * 50000000 is not a comparison."""
    if not all(isinstance(value, int | float) for value in (left, right)):
        raise TypeError("* multiplies numbers only")
    return left * right


_OPERATORS = {operator: function for operator, function in DEFAULT_OPERATORS.items()
              if operator not in _UNBOUNDED_OPERATORS} | {ast.Mult: _multiply_numbers}


def names_in(expression: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(expression.strip(), mode="eval")) if isinstance(node, ast.Name)}


def expression_problems(expression: str, allowed: Iterable[str]) -> list[str]:
    """Why an expression cannot be used with these names, or nothing if it can."""
    allowed = set(allowed) | {"True", "False", "None"}
    if len(expression) > MAXIMUM_LENGTH:
        return [f"an expression of {len(expression)} characters is too long; at most {MAXIMUM_LENGTH} (split the rule)"]
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
    if any(isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult)
           and any(isinstance(side, ast.Constant) and isinstance(side.value, str) for side in (node.left, node.right))
           for node in ast.walk(tree)):
        problems.append("* multiplies numbers, not text")
    if any(isinstance(node, _UNBOUNDED_OPERATORS) for node in ast.walk(tree)):
        problems.append("**, <<, >> and bitwise operators are not allowed: a rule compares values "
                        "(+, -, *, / on numbers are)")
    return problems


def evaluate(expression: str, names: Mapping[str, Any]) -> Any:
    """Evaluate with exactly these names and no functions; raises on type errors (e.g. None >= 7), and on
    what validation refuses (a snapshot deployed before a check existed still meets it here)."""
    if len(expression) > MAXIMUM_LENGTH:
        raise ValueError(f"an expression of {len(expression)} characters is too long")
    return EvalWithCompoundTypes(operators=_OPERATORS, names=dict(names), functions={}).eval(expression.strip())
