"""YAML loading that remembers where every value came from.

Authors are clinical managers, not programmers: every problem must point at a file, a line and a
field. PyYAML's composer gives each node a position; we keep a map from the path of each value
(`("steps", 2, "at")`) to its position, and translate pydantic's error locations back through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Location = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class SourcePosition:
    line: int
    column: int


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a document, where it is, and what to do about it."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class DocumentInvalid(Exception):
    """Raised with every problem found in a document; nothing partial is ever returned."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class LoadedDocument:
    """Plain data (dicts, lists, scalars) plus the position of every value and key."""

    file: str
    data: Any
    values: dict[Location, SourcePosition] = field(default_factory=dict)
    keys: dict[Location, SourcePosition] = field(default_factory=dict)

    def position_of(self, location: Location) -> SourcePosition:
        """The nearest known position for a location, walking up towards the document root."""
        location = tuple(location)
        while location:
            if location in self.keys:
                return self.keys[location]
            if location in self.values:
                return self.values[location]
            location = location[:-1]
        return self.values.get((), SourcePosition(1, 1))

    def problem(self, location: Location, message: str) -> Problem:
        position = self.position_of(location)
        return Problem(self.file, position.line, position.column, format_location(location), message)


def format_location(location: Location) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_document(text: str, file: str) -> LoadedDocument:
    """Parse YAML text into plain data, keeping positions; raise DocumentInvalid on bad YAML."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = error.problem or str(error)
        raise DocumentInvalid([Problem(file, line, column, "", f"not valid YAML: {reason}")]) from None
    except yaml.YAMLError as error:
        raise DocumentInvalid([Problem(file, 1, 1, "", f"not valid YAML: {error}")]) from None
    document = LoadedDocument(file=file, data=None)
    if root is None:
        raise DocumentInvalid([Problem(file, 1, 1, "", "the file is empty")])
    problems: list[Problem] = []
    document.data = _convert(root, (), document, problems)
    if problems:
        raise DocumentInvalid(problems)
    return document


def load_document_file(path: Path | str) -> LoadedDocument:
    path = Path(path)
    return load_document(path.read_text(encoding="utf-8"), str(path))


def _position(node: yaml.Node) -> SourcePosition:
    return SourcePosition(node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(node: yaml.Node, location: Location, document: LoadedDocument, problems: list[Problem]) -> Any:
    document.values[location] = _position(node)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if not isinstance(key, (str, int)):
                position = _position(key_node)
                problems.append(
                    Problem(document.file, position.line, position.column, format_location(location),
                            "keys must be plain words")
                )
                continue
            key = str(key)
            child = (*location, key)
            if key in result:
                position = _position(key_node)
                problems.append(
                    Problem(document.file, position.line, position.column, format_location(child),
                            f"'{key}' is given twice; keep one")
                )
                continue
            document.keys[child] = _position(key_node)
            result[key] = _convert(value_node, child, document, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*location, index), document, problems) for index, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return node
    # Times and dates stay text: the pathway language parses them itself, rather than YAML 1.1's
    # guesses (`09:00` would become the sexagesimal integer 540, `2026-12-01` a date object).
    if node.tag == "tag:yaml.org,2002:timestamp" or (node.tag == "tag:yaml.org,2002:int" and ":" in node.value):
        return node.value
    return _SCALARS.construct_object(node, deep=True)


_SCALARS = yaml.SafeLoader("")
