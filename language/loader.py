"""YAML loading that remembers where every value came from.

Authors are clinical managers, not programmers: every problem must point at a file, a line and a
field. PyYAML's composer gives each node a position; we keep a map from the path of each value
(`("steps", 2, "at")`) to its position, and translate pydantic's error locations back through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
        raise DocumentInvalid([_syntax_problem(error, file)]) from None
    except yaml.reader.ReaderError as error:
        line, column = _line_and_column(text, error.position)
        character = f"U+{error.character:04X}" if isinstance(error.character, int) else repr(error.character)
        raise DocumentInvalid([Problem(file, line, column, "",
                                       f"not valid YAML: the invisible control character {character} is not "
                                       "allowed; delete it (it often comes from copying out of a word processor)")]
                              ) from None
    except yaml.YAMLError as error:
        raise DocumentInvalid([Problem(file, 1, 1, "", f"not valid YAML: {error}")]) from None
    except RecursionError:
        raise DocumentInvalid([Problem(file, 1, 1, "", "not valid YAML: brackets are nested too deeply")]) from None
    document = LoadedDocument(file=file, data=None)
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _NULL and not root.value):  # or just `---`
        raise DocumentInvalid([Problem(file, 1, 1, "", "the file is empty")])
    problems: list[Problem] = []
    document.data = _Converter(document, problems).convert(root, ())
    if problems:
        raise DocumentInvalid(problems)
    return document


def _line_and_column(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


def _syntax_problem(error: yaml.MarkedYAMLError, file: str) -> Problem:
    """One YAML syntax error in words an author can act on, at the line where the fix belongs."""
    problem, context = error.problem or "", error.context or ""
    mark = error.problem_mark or error.context_mark
    opened = error.context_mark
    if context.startswith("while parsing a flow") and opened and mark and mark.line != opened.line:
        # An unclosed [ or { is only noticed lines later; the fix belongs where the bracket opened.
        bracket, closing = ("[", "]") if "sequence" in context else ("{", "}")
        message = (f"the '{bracket}' opened here is not closed with '{closing}' where expected "
                   f"(on line {mark.line + 1}: {problem})")
        mark = opened
    elif context.startswith("while scanning a quoted scalar") and opened and mark and mark.line != opened.line:
        message = f"the quote opened here is never closed (the text runs on to line {mark.line + 1})"
        mark = opened
    elif "'\\t'" in problem:
        message = "a tab character: YAML indentation must use spaces, not tabs"
    elif context and not context.startswith("while"):
        message = f"{context}, {problem}" if problem else context
    else:
        message = problem or context or str(error)
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return Problem(file, line, column, "", f"not valid YAML: {message}")


def decode_source(raw: bytes, file: str) -> str:
    """A document's bytes as text; DocumentInvalid (with the place) if they are not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        # Saved as Windows-1252 or GBK by a desktop editor: say where, not "codec can't decode".
        line = raw[:error.start].count(b"\n") + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise DocumentInvalid([Problem(file, line, column, "",
                                       "the file is not UTF-8 text; save it again with UTF-8 encoding")]) from None


def _position(node: yaml.Node) -> SourcePosition:
    return SourcePosition(node.start_mark.line + 1, node.start_mark.column + 1)


MAX_VALUES = 100_000
"""Aliases (`*name`) can make a small file expand into millions of values; refuse beyond this."""


class _Converter:
    """Turns composed nodes into plain data for one document, recording every position."""

    def __init__(self, document: LoadedDocument, problems: list[Problem]):
        self.document, self.problems = document, problems
        # A constructor of our own: PyYAML's keeps every node it ever built, and is not thread-safe.
        self.constructor = yaml.constructor.SafeConstructor()
        self.open: set[int] = set()
        self.count = 0

    def report(self, node: yaml.Node, location: Location, message: str) -> None:
        position = _position(node)
        self.problems.append(Problem(self.document.file, position.line, position.column,
                                     format_location(location), message))

    def convert(self, node: yaml.Node, location: Location) -> Any:
        self.document.values[location] = _position(node)
        self.count += 1
        if self.count == MAX_VALUES:
            self.report(node, location, f"the document expands to more than {MAX_VALUES} values; "
                                        "write the pathway out instead of repeating it with aliases (*name)")
        if self.count >= MAX_VALUES:
            return None
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if id(node) in self.open:
                self.report(node, location, "an alias (*name) refers to the value that contains it")
                return None
            self.open.add(id(node))
            try:
                return self._mapping(node, location) if isinstance(node, yaml.MappingNode) else [
                    self.convert(item, (*location, index)) for index, item in enumerate(node.value)]
            finally:
                self.open.discard(id(node))
        try:
            return self._scalar(node)
        except Exception:  # an explicit tag that does not fit: !!int abc, !!bool maybe, !custom
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            self.report(node, location, f"cannot read '{node.value}' as {tag}; remove the {tag} tag")
            return None

    def _mapping(self, node: yaml.MappingNode, location: Location) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _key(key_node)
            if key is None:
                self.report(key_node, location, "keys must be plain words")
                continue
            child = (*location, key)
            if key in result:
                self.report(key_node, child, f"'{key}' is given twice; keep one")
                continue
            self.document.keys[child] = _position(key_node)
            result[key] = self.convert(value_node, child)
        return result

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        # Times and dates stay text: the pathway language parses them itself, rather than YAML 1.1's
        # guesses (`09:00` would become the sexagesimal integer 540, `2026-12-01` a date object).
        if node.tag == "tag:yaml.org,2002:timestamp" or (node.tag == "tag:yaml.org,2002:int" and ":" in node.value):
            return node.value
        # Only true/false are booleans (YAML 1.2): `no` is Norwegian, `on`/`off` are words. Boolean
        # fields still accept yes/no, as pydantic reads those words itself.
        if node.tag == "tag:yaml.org,2002:bool" and node.style is None and node.value.lower() not in ("true", "false"):
            return node.value
        return self.constructor.construct_object(node, deep=True)


_NULL = "tag:yaml.org,2002:null"


def _key(node: yaml.Node) -> str | None:
    """A mapping key as the author wrote it: `no:` is a locale and `1:` a word, not False and 1."""
    if isinstance(node, yaml.ScalarNode) and node.tag != _NULL and node.value != "":
        return node.value
    return None
