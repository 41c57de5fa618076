"""docs/safety/hazard-log.md names real tests: every test id it cites exists, and every hazard is
verified by at least one test or marked OPEN."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "docs" / "safety" / "hazard-log.md"
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::([\w]+(?:::[\w]+)?)(?:\[[^\]`]*\])?`")


def defined_tests(path: Path) -> set[str]:
    """`name` for each test function, `Class::method` for each test method (read, never imported)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names |= {f"{node.name}::{item.name}" for item in node.body
                      if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)}
    return names


def problems(log: str, root: Path = ROOT) -> list[str]:
    found = []
    for file, name in TEST_ID.findall(log):
        path = root / file
        if not path.is_file():
            found.append(f"{file}::{name}: no such file")
        elif name not in defined_tests(path):
            found.append(f"{file}::{name}: no such test in {file}")
    for hazard in re.split(r"^## ", log, flags=re.MULTILINE)[1:]:
        title = hazard.splitlines()[0]
        verification = next((line for line in hazard.splitlines() if line.startswith("- **Verification**")), "")
        if not TEST_ID.search(verification) and "**OPEN**" not in verification and title.startswith("H-"):
            found.append(f"{title}: no test verifies it, and it is not marked OPEN")
    return found


def test_every_test_the_hazard_log_cites_exists():
    assert problems(LOG.read_text(encoding="utf-8")) == []
    assert len(TEST_ID.findall(LOG.read_text(encoding="utf-8"))) >= 30


def test_the_check_catches_a_made_up_test_and_an_unverified_hazard():
    log = ("## H-98 Something\n- **Verification**: `tests/test_hazard_log.py::test_that_was_never_written`\n"
           "## H-99 Something else\n- **Verification**: none yet\n")
    assert problems(log) == [
        "tests/test_hazard_log.py::test_that_was_never_written: no such test in tests/test_hazard_log.py",
        "H-99 Something else: no test verifies it, and it is not marked OPEN"]
