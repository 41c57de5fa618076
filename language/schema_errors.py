"""Pydantic's validation errors, said the way an author of YAML reads them, at their line."""

from __future__ import annotations

import difflib
import functools
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from language import model
from language.loader import LoadedDocument, Location, Problem


def schema_problems(document: LoadedDocument, error: ValidationError, root: type[BaseModel]) -> list[Problem]:
    """Each error pydantic found validating `document` as `root`, at its place, in words an author reads."""
    return [_problem_from(document, e, root) for e in error.errors()]


def _problem_from(document: LoadedDocument, error: dict[str, Any], root: type[BaseModel]) -> Problem:
    location = _data_location(document.data, error["loc"])
    if error["type"] == "union_tag_invalid" and isinstance(error["input"], dict) and "kind" in error["input"]:
        location = (*location, "kind")  # point at the word that is wrong, not at the whole step
    return document.problem(location, _friendly_message(error, root))


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


def _friendly_message(error: dict[str, Any], root: type[BaseModel]) -> str:
    kind, context = error["type"], error.get("ctx", {})
    name = error["loc"][-1] if error["loc"] else "document"
    if kind == "extra_forbidden":
        allowed = _allowed_fields(error["loc"][:-1], root)
        hint = difflib.get_close_matches(str(name), allowed, n=1)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else (f"; expected one of: {', '.join(allowed)}" if allowed else "")
        return f"'{name}' is not a valid option here{suggestion}"
    if kind == "missing":
        return f"required field '{name}' is missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        kinds = _kinds_at(error["loc"], root)
    if kind == "union_tag_invalid":
        hint = difflib.get_close_matches(str(context.get("tag")), kinds, n=1)
        suggestion = f"did you mean '{hint[0]}'? " if hint else ""
        return f"unexpected kind '{context.get('tag')}'; {suggestion}expected one of: {', '.join(kinds)}"
    if kind == "union_tag_not_found":
        entry = next((str(part).removesuffix("s") for part in reversed(error["loc"]) if isinstance(part, str)), "entry")
        return f"each {entry} needs a 'kind' (one of: {', '.join(kinds)})"
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


def _allowed_fields(pydantic_location: tuple, root: type[BaseModel]) -> list[str]:
    """The keys allowed at a pydantic location."""
    current = _unwrap(_annotation_at(pydantic_location, root))
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _kinds_at(pydantic_location: tuple, root: type[BaseModel]) -> list[str]:
    """The kinds a discriminated union at a pydantic location accepts (step kinds, item kinds)."""
    union = _unwrap(_annotation_at(pydantic_location, root))
    members = typing.get_args(union) if typing.get_origin(union) in (typing.Union, types.UnionType) else (union,)
    return [kind for kind in (_kind_of(_unwrap(member)) for member in members) if kind]


def _annotation_at(pydantic_location: tuple, root: type[BaseModel]) -> Any:
    """Walk the model types along a pydantic location to the type expected there (None if lost)."""
    current: Any = root
    for part in pydantic_location:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if part in current.model_fields:
                current = current.model_fields[part].annotation
            elif _kind_of(current) != part:
                return None
            continue
        origin, arguments = typing.get_origin(current), typing.get_args(current)
        if origin is list and isinstance(part, int):
            current = arguments[0]
        elif origin is dict:
            current = arguments[1]
        elif origin in (typing.Union, types.UnionType):
            current = next((member for member in map(_unwrap, arguments) if _kind_of(member) == part), None)
        else:
            return None
    return current


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
