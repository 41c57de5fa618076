"""Events into running enrollments (a lab result, a clinic's blood pressure reading): what an event
may carry, what its rules decide, and what validation refuses in the pathway that declares them.

An event's numbers, booleans and codes are values rules read, allowed in Temporal's history like
answer values; its text fields are notes for staff, stored with the event and never read by rules,
so they never reach the workflow.
"""

from __future__ import annotations

import ast
import difflib
import itertools
import math
from collections.abc import Iterable, Mapping
from typing import Any

from language.expressions import names_in
from language.instruments.model import (
    ChoiceOption,
    Item,
    NumberItem,
    SingleChoiceItem,
    YesNoItem,
)
from language.loader import Location
from language.model import EventDeclaration, EventField, EventRule, Pathway
from language.rule_checks import RuleScope, rule_problems
from language.rules import Decision, decide, parameter_names

MAX_TEXT_LENGTH = 1000
# A number field without bounds still has these in the checks of whether a rule can match.
_UNBOUNDED = 1e9


class EventInvalid(ValueError):
    """An event the pathway cannot take; `errors` maps each field's name to what is wrong with it."""

    def __init__(self, message: str, errors: Mapping[str, str] | None = None):
        self.message, self.errors = message, dict(errors or {})
        super().__init__(message + "".join(f"; {name}: {why}" for name, why in self.errors.items()))


def declaration(pathway: Pathway, event_type: str) -> EventDeclaration:
    """The event as the pathway declares it; EventInvalid naming those it does declare otherwise."""
    declared = pathway.events.get(event_type)
    if declared is None:
        known = ", ".join(sorted(pathway.events)) or "none"
        raise EventInvalid(f"pathway {pathway.id} v{pathway.version} takes no event '{event_type}' (it takes: {known})")
    return declared


def _finite(value: Any) -> float | None:
    """The value as a finite float, or None: text, booleans, infinities and integers beyond any float are no number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _value_problem(field: EventField, value: Any) -> str | None:
    if value is None:
        return "required" if field.required else None
    match field.type:
        case "number":
            if _finite(value) is None:
                return f"expected a number, not {value!r}"[:200]
            if field.min is not None and value < field.min:
                return f"{value:g} is below the lowest plausible value, {field.min:g}"
            if field.max is not None and value > field.max:
                return f"{value:g} is above the highest plausible value, {field.max:g}"
        case "boolean":
            if not isinstance(value, bool):
                return f"expected true or false, not {value!r}"
        case "code":
            if value not in field.codes:
                return f"expected one of {', '.join(field.codes)}, not {value!r}"
        case "text":
            if not isinstance(value, str) or len(value) > MAX_TEXT_LENGTH:
                return f"expected text of at most {MAX_TEXT_LENGTH} characters"
    return None


def read_event(pathway: Pathway, event_type: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The event's values, every declared field present (None if left out); EventInvalid naming each field
    that is unknown, missing, or of the wrong type."""
    fields = declaration(pathway, event_type).fields
    errors = {name: "not a field of this event" + (f"; did you mean '{hint[0]}'?" if (
        hint := difflib.get_close_matches(name, list(fields), n=1)) else f" (its fields: {', '.join(fields) or 'none'})")
        for name in values if name not in fields}
    errors |= {name: why for name, field in fields.items() if (why := _value_problem(field, values.get(name)))}
    if errors:
        raise EventInvalid(f"the {event_type} event does not fit its declaration", errors)
    return {name: values.get(name) for name in fields}


def rules_for(pathway: Pathway, event_type: str) -> list[EventRule]:
    return [rule for rule in pathway.on_event if rule.event == event_type]


def values_for_rules(pathway: Pathway, event_type: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Of an event's values, read as `read_event` reads them (and refused as it refuses them), those its rules
    compare: what the workflow is given."""
    values = read_event(pathway, event_type, values)
    read: set[str] = set()
    for rule in rules_for(pathway, event_type):
        read |= names_in(rule.when)
    fields = pathway.events[event_type].fields
    return {name: value for name, value in values.items() if name in read and fields[name].type != "text"}


def rule_values_problem(pathway: Pathway, event_type: str, values: Mapping[str, Any]) -> str | None:
    """Why the workflow must refuse these values (what `values_for_rules` gives passes), or None."""
    try:
        fields = declaration(pathway, event_type).fields
    except EventInvalid as unknown:
        return unknown.message
    for name, value in values.items():
        field = fields.get(name)
        if field is None or field.type == "text":
            return f"the {event_type} event has no field '{name}' that rules read"
        if value is not None and (why := _value_problem(field, value)):
            return f"{event_type} {name}: {why}"
    return None


def decide_event(pathway: Pathway, event_type: str, values: Mapping[str, Any], tags: Iterable[str]) -> Decision:
    """What the event's rules decide: they see the parameters, the event's fields (None when absent) and the tags."""
    fields = {name: None for name, field in pathway.events[event_type].fields.items() if field.type != "text"}
    names = {**parameter_names(pathway.parameters), **fields, **values, "tags": list(tags)}
    return decide(rules_for(pathway, event_type), names)


# --- Validation of the pathway's events and on_event rules ----------------------------------------


def _as_item(name: str, field: EventField) -> Item | None:
    """The field as the rule checks know values (an instrument's item); text is no value rules read.
    Built without validation: a field's own problems are reported on the field, not here."""
    match field.type:
        case "number":
            low = -_UNBOUNDED if field.min is None else field.min
            high = _UNBOUNDED if field.max is None else field.max
            return NumberItem.model_construct(id=name, kind="number", unit="-", min=low, max=high, decimals=3)
        case "boolean":
            return YesNoItem.model_construct(id=name, kind="yes_no")
        case "code":
            return SingleChoiceItem.model_construct(
                id=name, kind="single_choice", scored=False,
                options=[ChoiceOption.model_construct(id=code, score=None) for code in field.codes])
    return None


def _field_problems(where: Location, name: str, field: EventField, taken: Mapping[str, str]) -> list[tuple[Location, str]]:
    problems = []
    if name in taken:
        problems.append((where, f"'{name}' is already {taken[name]}; rules could not tell them apart: rename the field"))
    if field.type != "number" and (field.min is not None or field.max is not None):
        problems.append((where, f"min and max bound numbers; '{name}' is {field.type}"))
    if field.min is not None and field.max is not None and field.min > field.max:
        problems.append(((*where, "min"), f"min ({field.min:g}) is above max ({field.max:g})"))
    if field.type == "code" and len(set(field.codes)) < 2:
        problems.append((where, "a code field lists at least two codes under `codes:` (one code alone says nothing)"))
    if field.type != "code" and field.codes:
        problems.append(((*where, "codes"), f"codes are the values of a code field; '{name}' is {field.type}"))
    return problems


_COMPARED_AS = {"number": float, "boolean": bool, "code": str}


def _constant_type(node: ast.expr, parameters: Iterable[str]) -> type | None:
    """What a field is compared with: a number (a parameter too), a boolean or a text; None if not a value."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    if isinstance(node, ast.Name) and node.id in parameters:
        return float
    if isinstance(node, ast.Name) and node.id in ("True", "False"):
        return bool
    if not isinstance(node, ast.Constant) or node.value is None:
        return None
    return bool if isinstance(node.value, bool) else str if isinstance(node.value, str) else float


def _type_problems(expression: str, fields: Mapping[str, EventField], parameters: Iterable[str]) -> list[str]:
    """A field compared with a value of another type: such a rule would never match, or never decide."""
    problems = []
    for node in ast.walk(ast.parse(expression.strip(), mode="eval")):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for left, right in itertools.pairwise(operands):
            for named, other in ((left, right), (right, left)):
                field = fields.get(named.id) if isinstance(named, ast.Name) else None
                compared = _constant_type(other, parameters)
                if field is None or compared is None or compared is _COMPARED_AS[field.type]:
                    continue
                example = {"number": "a number or a parameter", "boolean": "True or False",
                           "code": f"one of its codes ({', '.join(field.codes)})"}[field.type]
                problems.append(f"'{named.id}' is a {field.type} field: compare it with {example}")
    return list(dict.fromkeys(problems))


def event_problems(pathway: Pathway, tags: frozenset[str]) -> list[tuple[Location, str]]:
    """The events' fields, then each on_event rule: a declared event, fields it has, values of their types,
    and a `when` that can match. `tags` are those the pathway's actions set."""
    problems: list[tuple[Location, str]] = []
    step_ids = {step.id for step in pathway.steps}
    for event_type, declared in pathway.events.items():
        if event_type in step_ids:
            problems.append((("events", event_type), (f"'{event_type}' is also a step id, and timelines name both "
                                                     f"by their id: rename the event")))
        taken = {name: "a parameter" for name in pathway.parameters} | {"tags": "the enrollment's tags"}
        for name, field in declared.fields.items():
            problems += _field_problems(("events", event_type, "fields", name), name, field, taken)
    for number, rule in enumerate(pathway.on_event):
        where: Location = ("on_event", number)
        if rule.event not in pathway.events:
            hint = difflib.get_close_matches(rule.event, sorted(pathway.events), n=1)
            problems.append(((*where, "event"), f"no event '{rule.event}' under `events:`; " + (
                f"did you mean '{hint[0]}'?" if hint else f"declared: {', '.join(sorted(pathway.events)) or 'none'}")))
            continue
        message_steps = {step.id for step in pathway.steps if step.kind == "message"}
        problems += [((*where, "send"), f"'{target}' is not a message step of this pathway")
                     for target in rule.send if target not in message_steps]
        fields = pathway.events[rule.event].fields
        problems += [((*where, "when"), message) for message in _when_problems(rule, fields, pathway, tags)]
    return problems


def _when_problems(rule: EventRule, fields: Mapping[str, EventField], pathway: Pathway, tags: frozenset[str]) -> list[str]:
    items = {name: item for name, field in fields.items() if (item := _as_item(name, field)) is not None}
    scope = RuleScope(kind="event", instrument=None, tags=tags, fields=items,
                      parameters={name: parameter.value for name, parameter in pathway.parameters.items()})
    try:
        used = names_in(rule.when)
    except SyntaxError:
        return rule_problems(rule.when, scope)  # says where it does not parse
    texts = sorted(name for name in used if name in fields and fields[name].type == "text")
    if texts:
        return [(f"{', '.join(repr(name) for name in texts)}: text fields are notes for staff and never reach the "
                f"rules; declare the value as a number, boolean or code field to compare it")]
    if used <= scope.names() | {"True", "False", "None"} and (problems := _type_problems(rule.when, fields,
                                                                                        pathway.parameters)):
        return problems
    return rule_problems(rule.when, scope)
