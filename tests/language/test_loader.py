"""The YAML loader: plain data, the place of every value, and YAML's traps closed."""

from __future__ import annotations

import time

import pytest

from language.loader import MAX_VALUES, DocumentInvalid, Problem, SourcePosition, load_document


def problems(text: str) -> list[Problem]:
    with pytest.raises(DocumentInvalid) as invalid:
        load_document(text, "f.yaml")
    return invalid.value.problems


def test_positions_of_keys_and_values():
    document = load_document("id: x\nsteps:\n  - kind: message\n    at: {every: 1d}\n", "f.yaml")
    assert document.keys[("steps",)] == SourcePosition(2, 1)
    assert document.values[("steps", 0)] == SourcePosition(3, 5)
    assert document.keys[("steps", 0, "at", "every")] == SourcePosition(4, 10)
    # Something absent is placed at its nearest present ancestor.
    assert document.position_of(("steps", 0, "template", "en")) == SourcePosition(3, 5)
    assert document.position_of(()) == SourcePosition(1, 1)


def test_problem_prints_like_a_compiler():
    document = load_document("id: x\nsteps: []\n", "f.yaml")
    assert str(document.problem(("steps",), "too few")) == "f.yaml:2:1: steps: too few"
    assert str(Problem("f.yaml", 3, 4, "", "not valid YAML: x")) == "f.yaml:3:4: not valid YAML: x"


def test_document_invalid_sorts_its_problems():
    later, earlier = Problem("f", 9, 1, "b", "m"), Problem("f", 2, 5, "a", "m")
    assert DocumentInvalid([later, earlier]).problems == [earlier, later]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("09:00", "09:00"),  # YAML 1.1: sexagesimal 540
        ("2026-12-01", "2026-12-01"),  # YAML 1.1: a date object
        ("no", "no"),  # YAML 1.1: False; the Norwegian locale
        ("on", "on"),
        ("Yes", "Yes"),
        ("OFF", "OFF"),
        ("true", True),
        ("False", False),
        ('"yes"', "yes"),
        ("7", 7),
        ("1.5", 1.5),
        ("~", None),
        ("day 3 09:00", "day 3 09:00"),
    ],
)
def test_scalars_are_read_as_the_language_means_them(text, value):
    assert load_document(f"v: {text}\n", "f.yaml").data == {"v": value}


def test_keys_are_kept_as_written():
    data = load_document("no: a\non: b\n1: c\nyes: d\n2026-01-01: e\n", "f.yaml").data
    assert list(data) == ["no", "on", "1", "yes", "2026-01-01"]


@pytest.mark.parametrize("text", ["? [a, b]\n: c\n", "~: c\n", "? ''\n: c\n"])
def test_keys_that_are_not_words(text):
    [problem] = problems(text)
    assert problem.message == "keys must be plain words"
    assert problem.line == 1


def test_every_duplicate_key_is_reported_at_its_second_occurrence():
    found = problems("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n")
    assert [(p.line, p.field, p.message) for p in found] == [
        (4, "b.c", "'c' is given twice; keep one"),
        (5, "a", "'a' is given twice; keep one"),
    ]


def test_aliases_are_expanded():
    assert load_document("a: &x [1, 2]\nb: *x\n", "f.yaml").data == {"a": [1, 2], "b": [1, 2]}


def test_an_alias_inside_itself_is_a_problem_not_a_recursion_error():
    [problem] = problems("a: &x\n  b: *x\n")
    assert (problem.line, problem.field) == (1, "a.b")
    assert "refers to the value that contains it" in problem.message


def test_alias_bombs_are_refused_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10^9 values
    started = time.monotonic()
    [problem] = problems("\n".join(lines))
    assert f"more than {MAX_VALUES} values" in problem.message
    assert time.monotonic() - started < 5


def test_deep_nesting_is_a_problem_not_a_recursion_error():
    [problem] = problems("a: " + "[" * 1500 + "]" * 1500 + "\n")
    assert "nested too deeply" in problem.message


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("a: 1\nb: x\x07y\n", 2, 5, "control character U+0007"),
        ("a: [1,\n  2\nb: 3\n", 1, 4, "the '[' opened here is not closed with ']'"),
        ("a: {x: 1\nb: 2\n", 1, 4, "the '{' opened here is not closed with '}'"),
        ("a: 'it\nb: 2\n", 1, 4, "the quote opened here is never closed"),
        ("a: [1, 2]]\n", 1, 10, "expected <block end>, but found ']'"),
        ("a:\n\tb: 1\n", 2, 1, "indentation must use spaces, not tabs"),
        ("a: 1\n---\nb: 2\n", 2, 1, "expected a single document in the stream, but found another document"),
        ("a: *nothing\n", 1, 4, "found undefined alias 'nothing'"),
        ("a: !!int x\n", 1, 4, "cannot read 'x' as !!int; remove the !!int tag"),
        ("a: !!bool maybe\nb: !!float x\n", 2, 4, "cannot read 'x' as !!float"),
        ("a: !!python/object:os.system x\n", 1, 4, "remove the !!python/object:os.system tag"),
    ],
)
def test_yaml_problems_say_where_and_what(text, line, column, message):
    found = problems(text)
    assert any((p.line, p.column) == (line, column) and message in p.message for p in found), found


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_an_empty_file(text):
    assert [(p.line, p.message) for p in problems(text)] == [(1, "the file is empty")]


def test_a_byte_order_mark_is_fine():
    assert load_document("\ufeffid: x\n", "f.yaml").data == {"id": "x"}
