"""Turning YAML text into a validated Pathway, or into every problem it has, each with its place."""

from __future__ import annotations

import difflib
import types
import typing
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pathways.loader import DocumentInvalid, LoadedDocument, Location, Problem, load_document
from pathways.model import STEP_KINDS, Pathway
from pathways.templates import template_problems


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
    path = Path(path)
    return parse_pathway(path.read_text(encoding="utf-8"), str(path))


def reference_problems(data: dict) -> list[tuple[Location, str]]:
    """Rules across fields that a schema cannot express, each with the field path it concerns.

    They read the raw document, not the model, so that they are reported together with schema
    errors elsewhere in the file: an author fixes everything in one pass.
    """
    problems: list[tuple[Location, str]] = []
    locales = [locale for locale in _list(data.get("locales")) if isinstance(locale, str)]
    steps = [(index, step) for index, step in enumerate(_list(data.get("steps"))) if isinstance(step, dict)]
    counts = Counter(step.get("id") for _, step in steps)
    for index, step in steps:
        if isinstance(step.get("id"), str) and counts[step["id"]] > 1:
            problems.append((("steps", index, "id"),
                             f"step id '{step['id']}' is used by {counts[step['id']]} steps; ids must be unique"))
        templates = step.get("template")
        if not isinstance(templates, dict):
            continue
        problems += [(("steps", index, "template"), f"no template for locale '{locale}', which the pathway declares")
                     for locale in locales if locale not in templates]
        for locale, template in templates.items():
            if locales and locale not in locales:
                problems.append((("steps", index, "template", locale),
                                 f"locale '{locale}' is not among the pathway's locales ({', '.join(locales)})"))
            for part, source in (template.items() if isinstance(template, dict) else ()):
                if part in ("subject", "body") and isinstance(source, str):
                    problems += [(("steps", index, "template", locale, part), message)
                                 for message in template_problems(source)]
    return problems


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _problem_from(document: LoadedDocument, error: dict[str, Any]) -> Problem:
    location = _data_location(document.data, error["loc"])
    return document.problem(location, _friendly_message(error))


def _data_location(data: Any, pydantic_location: tuple) -> Location:
    """Pydantic puts union tags into locations (steps.0.message.at); keep only real data keys."""
    location: list[str | int] = []
    for index, part in enumerate(pydantic_location):
        last = index == len(pydantic_location) - 1
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
        return f"unexpected kind '{context.get('tag')}'; expected one of: {', '.join(STEP_KINDS)}"
    if kind == "union_tag_not_found":
        return f"each step needs a 'kind' (one of: {', '.join(STEP_KINDS)})"
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    if kind == "literal_error":
        return f"{error['msg'][0].lower()}{error['msg'][1:]} (got {error['input']!r})"
    return f"{error['msg'][0].lower()}{error['msg'][1:]}"


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
