"""The layout keeps the architecture readable: imports run one way, files stay small, and pathways/
holds only what clinical managers and sites write."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from services.settings import PROJECT_ROOT

# Each package and the packages of ours it may import. Read down the list: the language is pure,
# workflows are deterministic and see only the language, activities do the side effects, services
# run the application, and the entry points (api, worker, tools) sit on top.
MAY_IMPORT: dict[str, set[str]] = {
    "language": set(),
    "store": set(),
    "workflows": {"language"},
    "activities": {"language", "workflows", "store"},
    "services": {"language", "workflows", "store"},
    "api": {"language", "workflows", "store", "services"},
    "worker": {"language", "workflows", "activities", "store", "services"},
    "tools": {"language", "workflows", "activities", "store", "services", "worker"},
}
LONGEST_FILE = 500


def imports_against_the_direction(root: Path) -> list[str]:
    """Every import of one of our packages that its importer may not make, as `file:line: a -> b`."""
    wrong = []
    for package, allowed in MAY_IMPORT.items():
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    head = module.split(".")[0]
                    if head in MAY_IMPORT and head != package and head not in allowed:
                        wrong.append(f"{path.relative_to(root)}:{node.lineno}: {package} -> {module}")
    return wrong


def test_every_package_of_ours_is_placed_in_the_direction():
    ours = {path.parent.name for path in PROJECT_ROOT.glob("*/__init__.py")}
    assert ours == set(MAY_IMPORT), "add the new package to MAY_IMPORT, with what it may import"


def test_imports_run_one_way():
    assert imports_against_the_direction(PROJECT_ROOT) == []


def test_an_import_against_the_direction_is_caught(tmp_path: Path):
    for package in MAY_IMPORT:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "language" / "plan.py").write_text("import os\nfrom workflows.contracts import Timeline\n")
    (tmp_path / "activities" / "delivery.py").write_text("from services import links\n")

    assert imports_against_the_direction(tmp_path) == [
        "language/plan.py:2: language -> workflows.contracts", "activities/delivery.py:1: activities -> services"]


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_no_source_file_is_over_500_lines(package: str):
    long = {str(path.relative_to(PROJECT_ROOT)): lines for path in (PROJECT_ROOT / package).rglob("*.py")
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > LONGEST_FILE}
    assert long == {}, f"split these by job: {long}"


def test_pathways_holds_no_code():
    assert sorted(str(path.relative_to(PROJECT_ROOT)) for path in (PROJECT_ROOT / "pathways").rglob("*.py")) == []
