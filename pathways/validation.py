"""Turning YAML text into a validated Pathway, or into every problem it has, each with its place."""

from __future__ import annotations

import difflib
import functools
import types
import typing
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError, meta
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from pathways import model, timing
from pathways.loader import DocumentInvalid, LoadedDocument, Location, Problem, load_document, read_text
from pathways.model import STEP_KINDS, Pathway
from pathways.templates import environment, template_problems


def parse_pathway(text: str, file: str) -> Pathway:
    """Validate a pathway document; raise DocumentInvalid listing every problem found."""
    document = load_document(text, file)
    if not isinstance(document.data, dict):
        raise DocumentInvalid([document.problem((), "a pathway must be a mapping of fields (id, title, steps, ...)")])
    problems = [document.problem(location, message) for location, message in reference_problems(document.data)]
    try:
        pathway = Pathway.model_validate(document.data)
    except ValidationError as error:
        problems += [_problem_from(document, e) for e in error.errors()]
    if problems:
        raise DocumentInvalid(problems)
    return pathway


def load_pathway_file(path: Path | str) -> Pathway:
    return parse_pathway(read_text(path), str(path))


def reference_problems(data: dict) -> list[tuple[Location, str]]:
    """Rules across fields that a schema cannot express, each with the field path it concerns.

    They read the raw document, not the model, so that they are reported together with schema
    errors elsewhere in the file: an author fixes everything in one pass.
    """
    problems: list[tuple[Location, str]] = []
    locales = [locale for locale in _list(data.get("locales")) if isinstance(locale, str)]
    steps = [(index, step) for index, step in enumerate(_list(data.get("steps"))) if isinstance(step, dict)]
    counts = Counter(step["id"] for _, step in steps if isinstance(step.get("id"), str))
    for index, step in steps:
        if isinstance(step.get("id"), str) and counts[step["id"]] > 1:
            problems.append((("steps", index, "id"),
                             f"step id '{step['id']}' is used by {counts[step['id']]} steps; ids must be unique"))
        problems += _timing_problems(index, step)
        for field in ("template", "reminder_template"):
            problems += _templates_problems(("steps", index, field), step.get(field), locales, step.get("kind"))
    return problems


# What a template may use beyond templates.TEMPLATE_VARIABLES, by step kind: delivery supplies it.
_KIND_VARIABLES = {"questionnaire": "link"}


def _templates_problems(where: Location, templates: Any, locales: list[str], kind: Any) -> list[tuple[Location, str]]:
    """One template per declared locale, each renderable with what delivery supplies for this kind of step."""
    if not isinstance(templates, dict):
        return []
    problems = [(where, f"no template for locale '{locale}', which the pathway declares")
                for locale in locales if locale not in templates]
    extra = _KIND_VARIABLES.get(kind) if isinstance(kind, str) else None
    for locale, template in templates.items():
        if locales and locale not in locales:
            problems.append(((*where, locale), f"locale '{locale}' is not among the pathway's locales ({', '.join(locales)})"))
        if not isinstance(template, dict):
            continue
        used: set[str] = set()
        for part, source in template.items():
            if part in ("subject", "body") and isinstance(source, str):
                messages = template_problems(source)
                if extra:  # template_problems knows only the variables every message has
                    messages = [m for m in messages if not m.startswith(f"unknown template variable '{extra}';")]
                problems += [((*where, locale, part), message) for message in messages]
                used |= _variables_in(source)
        if extra and extra not in used and any(isinstance(template.get(part), str) for part in ("subject", "body")):
            problems.append(((*where, locale), f"the message must contain {{{{ {extra} }}}}, "
                                               "or the patient has no way to reach the form"))
    return problems


def _variables_in(source: str) -> set[str]:
    try:
        return meta.find_undeclared_variables(environment().parse(source))
    except TemplateSyntaxError:
        return set()


def _timing_problems(index: int, step: dict) -> list[tuple[Location, str]]:
    """A repeat must move forward in time, and the last occurrence must stay within the calendar."""
    try:
        first = timing.parse_timing(step["at"]) if isinstance(step.get("at"), str) else None
    except ValueError:
        first = None  # the schema reports it
    repeat = step.get("repeat") if isinstance(step.get("repeat"), dict) else {}
    try:
        every = timing.parse_duration(repeat["every"]) if "every" in repeat else None
    except ValueError:
        every = None
    if every is not None and every <= timedelta(0):
        return [(("steps", index, "repeat", "every"), "the time between occurrences must be longer than zero")]
    if first is None:
        return []
    # Whole seconds in Python ints: `times` may be absurd, and timedelta arithmetic would overflow.
    clock = first.clock.hour * 3600 + first.clock.minute * 60 if first.clock is not None else 0
    last = first.days * 86_400 + clock + int(first.offset.total_seconds())
    times, where = repeat.get("times"), ("steps", index, "at")
    if every is not None and isinstance(times, int) and not isinstance(times, bool) and times >= 2:
        last, where = last + int(every.total_seconds()) * (times - 1), ("steps", index, "repeat")
    if last // 86_400 > timing.MAX_DAYS:
        return [(where, f"the last occurrence would fall on day {last // 86_400}; "
                        f"a pathway may span at most {timing.MAX_DAYS} days")]
    return []


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _problem_from(document: LoadedDocument, error: dict[str, Any]) -> Problem:
    location = _data_location(document.data, error["loc"])
    if error["type"] == "union_tag_invalid" and isinstance(error["input"], dict) and "kind" in error["input"]:
        location = (*location, "kind")  # point at the word that is wrong, not at the whole step
    return document.problem(location, _friendly_message(error))


def _data_location(data: Any, pydantic_location: tuple) -> Location:
    """Pydantic puts union tags into locations (steps.0.message.at); keep only real data keys."""
    location: list[str | int] = []
    for index, part in enumerate(pydantic_location):
        last = index == len(pydantic_location) - 1
        if part == "[key]":  # the key itself was wrong: its own position is the place
            continue
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        elif not last:
            continue
        location.append(part)
    return tuple(location)


def _friendly_message(error: dict[str, Any]) -> str:
    kind, context = error["type"], error.get("ctx", {})
    name = error["loc"][-1] if error["loc"] else "document"
    if kind == "extra_forbidden":
        allowed = _allowed_fields(error["loc"][:-1])
        hint = difflib.get_close_matches(str(name), allowed, n=1)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else (f"; expected one of: {', '.join(allowed)}" if allowed else "")
        return f"'{name}' is not a valid option here{suggestion}"
    if kind == "missing":
        return f"required field '{name}' is missing"
    if kind == "union_tag_invalid":
        hint = difflib.get_close_matches(str(context.get("tag")), STEP_KINDS, n=1)
        suggestion = f"did you mean '{hint[0]}'? " if hint else ""
        return f"unexpected kind '{context.get('tag')}'; {suggestion}expected one of: {', '.join(STEP_KINDS)}"
    if kind == "union_tag_not_found":
        return f"each step needs a 'kind' (one of: {', '.join(STEP_KINDS)})"
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    if kind == "string_pattern_mismatch" and context.get("pattern") in _pattern_help():
        return f"'{error['input']}' is not allowed here; expected {_pattern_help()[context['pattern']]}"
    if kind == "literal_error":
        return f"{error['msg'][0].lower()}{error['msg'][1:]} (got {error['input']!r})"
    return f"{error['msg'][0].lower()}{error['msg'][1:]}"


@functools.cache
def _pattern_help() -> dict[str, str]:
    """What each text pattern of the language means in words, from the descriptions in the model."""
    helps = {}
    for alias in vars(model).values():
        if typing.get_origin(alias) is typing.Annotated:
            for info in typing.get_args(alias)[1:]:
                if isinstance(info, FieldInfo) and info.description:
                    helps.update({meta.pattern: info.description for meta in info.metadata
                                  if isinstance(getattr(meta, "pattern", None), str)})
    return helps


def _allowed_fields(pydantic_location: tuple) -> list[str]:
    """Walk the model types along a pydantic location to list the keys allowed there."""
    current: Any = Pathway
    for part in pydantic_location:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if part in current.model_fields:
                current = current.model_fields[part].annotation
            elif _kind_of(current) != part:
                return []
            continue
        origin, arguments = typing.get_origin(current), typing.get_args(current)
        if origin is list and isinstance(part, int):
            current = arguments[0]
        elif origin is dict:
            current = arguments[1]
        elif origin in (typing.Union, types.UnionType):
            current = next((member for member in map(_unwrap, arguments) if _kind_of(member) == part), None)
        else:
            return []
    current = _unwrap(current)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(arguments) == 1:
        return _unwrap(arguments[0])
    return annotation


def _kind_of(model: Any) -> str | None:
    field = getattr(model, "model_fields", {}).get("kind")
    return typing.get_args(field.annotation)[0] if field else None
