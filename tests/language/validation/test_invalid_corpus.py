"""The pathway language's error corpus: every file under invalid/ is a broken pathway that says,
in its own leading comments, which problems it must produce and on which line.

    # expect: 12: steps[1].at: 'day three' is not a time
    # expect: 5:11: the file is not UTF-8 text

Each expectation is a line number (optionally `line:column`) and a piece of the problem as printed
after the position (`field: message`, or just `message` for problems of the whole file). A file
must produce exactly its expected problems, all in one run: authors fix everything in one pass,
and a stray extra problem is as much a regression as a missing one.

Files under valid/, and the pathways shipped in pathways/, must validate.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from language.loader import DocumentInvalid, Problem
from services.settings import PROJECT_ROOT
from services.site import load_site

SITE = load_site(PROJECT_ROOT / "pathways")

HERE = Path(__file__).parent
REPO = PROJECT_ROOT
INVALID = sorted((HERE / "invalid").glob("*.yaml"))
VALID = sorted((HERE / "valid").glob("*.yaml")) + sorted((REPO / "pathways").glob("*.yaml"))
EXPECT = re.compile(rb"^#\s*expect:\s*(\d+)(?::(\d+))?:\s(.+)$")


@dataclass(frozen=True)
class Expectation:
    line: int
    column: int | None
    text: str

    def matches(self, problem: Problem) -> bool:
        return (problem.line == self.line and (self.column is None or problem.column == self.column)
                and self.text in _printed(problem))

    def __str__(self) -> str:
        where = f"{self.line}:{self.column}" if self.column else str(self.line)
        return f"{where}: {self.text}"


def _printed(problem: Problem) -> str:
    """What the CLI prints after `file:line:col: `."""
    return f"{problem.field}: {problem.message}" if problem.field else problem.message


def expectations(path: Path) -> list[Expectation]:
    """The `# expect:` lines of the file's leading comment block (read as bytes: some files are not UTF-8)."""
    found = []
    for raw in path.read_bytes().splitlines():
        if not raw.startswith(b"#"):
            break
        match = EXPECT.match(raw.strip())
        if match:
            line, column, text = match.groups()
            found.append(Expectation(int(line), int(column) if column else None, text.decode("utf-8").strip()))
    return found


def problems_of(path: Path) -> list[Problem]:
    try:
        SITE.load_pathway(path)
    except DocumentInvalid as invalid:
        return invalid.problems
    return []


def test_the_corpus_is_large_enough():
    assert len(INVALID) >= 30, "issue 5 asks for 30+ malformed pathways"
    assert all(expectations(path) for path in INVALID), "every invalid file states what it expects"


@pytest.mark.parametrize("path", INVALID, ids=lambda path: path.stem)
def test_invalid_pathway_reports_exactly_the_expected_problems(path: Path):
    expected, problems = expectations(path), problems_of(path)
    unmatched = list(problems)
    missing = []
    for expectation in expected:
        match = next((problem for problem in unmatched if expectation.matches(problem)), None)
        if match is None:
            missing.append(expectation)
        else:
            unmatched.remove(match)
    report = "\n".join(
        ["expected but not reported:", *(f"  {e}" for e in missing),
         "reported but not expected:", *(f"  {p.line}:{p.column}: {_printed(p)}" for p in unmatched)]
    )
    assert not missing and not unmatched, report
    assert all(problem.file == str(path) and problem.line >= 1 and problem.column >= 1 for problem in problems)
    assert problems == sorted(problems), "problems are reported in line order"


@pytest.mark.parametrize("path", VALID, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_valid_pathway_validates(path: Path):
    assert problems_of(path) == []


# The command line: what an author actually runs.

CAREPATH = Path(sys.executable).parent / "carepath"  # the console script installed next to this Python


def carepath_validate(*paths: Path | str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CAREPATH), "validate", *map(str, paths)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}, timeout=60)


@pytest.mark.parametrize("name", ["many-problems", "unclosed-bracket", "not-utf8", "duplicate-step-id"])
def test_cli_prints_every_problem_as_file_line_col_and_exits_1(name: str):
    path = HERE / "invalid" / f"{name}.yaml"
    result = carepath_validate(path)
    assert result.returncode == 1, result.stderr
    printed = result.stderr.splitlines()
    for expectation in expectations(path):
        prefix = f"{path}:{expectation.line}:"
        assert any(line.startswith(prefix) and expectation.text in line for line in printed), (expectation, printed)
    assert "Traceback" not in result.stderr


def test_cli_accepts_a_valid_pathway():
    path = HERE / "valid" / "every-feature.yaml"
    result = carepath_validate(path)
    assert (result.returncode, result.stderr) == (0, "")
    assert f"{path}: ok" in result.stdout


def test_cli_exits_2_for_a_missing_file(tmp_path: Path):
    result = carepath_validate(tmp_path / "nowhere.yaml")
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_cli_reports_the_worst_outcome_over_several_files(tmp_path: Path):
    result = carepath_validate(HERE / "valid" / "minimal.yaml", HERE / "invalid" / "tab-indentation.yaml")
    assert result.returncode == 1
    assert "minimal.yaml: ok" in result.stdout
    assert "tab-indentation.yaml:11:" in result.stderr


# Compiler-style output: each problem's line follows it, with a caret under the column.

HEADER = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+): (?P<text>.+)$")
SOURCE = re.compile(r"^ (?P<line>\d+) \| (?P<source>.*)$")
CARET = re.compile(r"^ +\| (?P<padding>[ \t]*)(?P<mark>\^~*)$")


def excerpts(stderr: str) -> list[tuple[re.Match, re.Match | None, re.Match | None]]:
    """Each printed problem with the source and caret lines that follow it (None where absent)."""
    lines = stderr.splitlines()
    found = []
    for index, line in enumerate(lines):
        if header := HEADER.match(line):
            following = lines[index + 1:index + 3] + ["", ""]
            found.append((header, SOURCE.match(following[0]), CARET.match(following[1])))
    return found


def test_cli_shows_every_problem_of_the_corpus_with_its_line_and_a_caret_under_the_column():
    result = carepath_validate(*INVALID)

    assert result.returncode == 1 and "Traceback" not in result.stderr
    printed = excerpts(result.stderr)
    assert len(printed) == sum(len(problems_of(path)) for path in INVALID)
    for header, source, caret in printed:
        path, line, column = Path(header["file"]), int(header["line"]), int(header["column"])
        raw = (REPO / path).read_bytes().split(b"\n")[line - 1].rstrip(b"\r")
        if not raw.strip():
            assert source is None and caret is None, header.string  # nothing to show on a blank line
            continue
        assert source and caret, f"no excerpt after: {header.string}"
        assert int(source["line"]) == line
        if raw.isascii() and raw.decode().isprintable():
            assert source["source"] == raw.decode(), header.string
            assert len(caret["padding"]) == column - 1, header.string  # plain text: one column per character
    assert all(f"{path}: {len(problems_of(path))} problem" in result.stderr for path in INVALID)


def test_cli_caret_underlines_the_key_that_is_wrong():
    path = HERE / "invalid" / "many-problems.yaml"
    stderr = carepath_validate(path).stderr.splitlines()

    at = stderr.index(f"{path}:19:5: steps[0].at: '10:60' is not a time of day (00:00 to 23:59)")
    assert stderr[at + 1:at + 3] == [" 19 |     at: day 1 10:60", "    |     ^~"]
    # A missing field is reported at the mapping that lacks it: a caret there, no underlined word.
    missing = stderr.index(f"{path}:10:1: title: required field 'title' is missing")
    assert stderr[missing + 2] == "    | ^"


def test_cli_caret_allows_for_tabs_wide_characters_and_invisible_ones(tmp_path: Path):
    tab = HERE / "invalid" / "tab-indentation.yaml"
    control = HERE / "invalid" / "control-character.yaml"
    wide = tmp_path / "wide.yaml"
    wide.write_text("id: wide\nversion: 1\ntitle: 宽\nanchor: a\nlocales: [zh-CN]\nsteps:\n"
                    "  - {kind: message, id: m, at: 1h, template: {zh-CN: {subject: 您好您好, body: \"{{ doctor }}\"}}}\n",
                    encoding="utf-8")

    stderr = carepath_validate(tab, control, wide).stderr.splitlines()

    first = stderr.index(f"{tab}:11:1: not valid YAML: a tab character: YAML indentation must use spaces, not tabs")
    assert stderr[first + 1:first + 3] == [" 11 | \tat: day 0 +2h", "    | ^"]
    bell = next(index for index, line in enumerate(stderr) if line.startswith(f"{control}:5:13:"))
    assert stderr[bell + 1:bell + 3] == [" 5 | title: Hello\u2407", "   |             ^"]  # U+0007 shown as ␇
    body = next(index for index, line in enumerate(stderr) if line.startswith(f"{wide}:7:"))
    source, caret = stderr[body + 1], stderr[body + 2]
    # The four CJK characters take two terminal columns each: the caret is 4 columns further right.
    assert caret.index("^") == source.index("body") + 4 and caret.endswith("^~~~")


def test_cli_never_prints_a_traceback_for_a_directory(tmp_path: Path):
    result = carepath_validate(tmp_path)
    assert result.returncode == 2 and "cannot read" in result.stderr and "Traceback" not in result.stderr
