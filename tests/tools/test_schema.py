"""pathways/pathway.schema.json: generated from the models, complete, current, and true to the language."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tools.cli import SCHEMA_FILE, pathway_schema_text
from services.site import load_document_file

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "pathways").glob("*.yaml"))
VALID = sorted((REPO / "tests" / "language" / "validation" / "valid").glob("*.yaml"))
INVALID = REPO / "tests" / "language" / "validation" / "invalid"
SCHEMA_COMMENT = "# yaml-language-server: $schema=./pathway.schema.json"


def _pathways(paths: list[Path]) -> list[Path]:
    """Pathway files only (pathways/ also holds other YAML, e.g. teams)."""
    return [path for path in paths if SCHEMA_COMMENT in path.read_text(encoding="utf-8")]


def test_the_committed_schema_is_current():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == pathway_schema_text(), (
        "pathways/pathway.schema.json is stale: run `carepath schema` after changing language/model.py, "
        "and commit it")


def _properties(schema: dict):
    """(where, name, property schema) for every field of every model in the schema."""
    for name, definition in [("Pathway", schema), *schema["$defs"].items()]:
        for field, sub in definition.get("properties", {}).items():
            yield name, field, sub


def test_every_field_has_a_description_and_an_example_for_editors():
    schema = json.loads(pathway_schema_text())
    undescribed = [f"{model}.{field}" for model, field, sub in _properties(schema) if not sub.get("description")]
    # A field with a single allowed value (kind: message) is its own example.
    no_example = [f"{model}.{field}" for model, field, sub in _properties(schema)
                  if not sub.get("examples") and "const" not in sub]
    models = [name for name, definition in schema["$defs"].items() if not definition.get("description")]
    assert not undescribed, f"add description= to these fields in language/model.py: {undescribed}"
    assert not no_example, f"add examples= to these fields in language/model.py: {no_example}"
    assert not models, f"give these models a docstring: {models}"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(pathway_schema_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.mark.parametrize("path", _pathways(SHIPPED) + VALID, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_valid_pathways_satisfy_the_schema(path: Path, validator: Draft202012Validator):
    """What the language accepts, the editor must not underline (e.g. `tag: fever` without a list)."""
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(load_document_file(path).data)]
    assert errors == []


@pytest.mark.parametrize("name", ["misspelt-step-key", "unknown-step-kind", "unknown-top-level-key", "missing-required-field",
                                  "bad-slug", "version-zero", "unknown-channel", "no-steps", "repeat-once"])
def test_the_schema_refuses_what_the_language_refuses(name: str, validator: Draft202012Validator):
    assert list(validator.iter_errors(load_document_file(INVALID / f"{name}.yaml").data))


def test_shipped_pathways_point_editors_at_the_schema():
    assert _pathways(SHIPPED), "no shipped pathway names the schema"
    for path in _pathways(SHIPPED):
        assert path.read_text(encoding="utf-8").startswith(SCHEMA_COMMENT), path


def _carepath(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.cli", *arguments], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=60)


def test_carepath_schema_writes_the_file_and_check_says_when_it_is_stale(tmp_path: Path):
    output = tmp_path / "pathway.schema.json"
    output.write_text("{}\n", encoding="utf-8")

    stale = _carepath("schema", "--check", "--output", str(output))
    assert stale.returncode == 1 and "is stale: run `carepath schema`" in stale.stderr
    assert output.read_text(encoding="utf-8") == "{}\n", "--check only compares"

    written = _carepath("schema", "--output", str(output))
    current = _carepath("schema", "--check", "--output", str(output))

    assert written.returncode == 0 and "written" in written.stdout
    assert current.returncode == 0 and "up to date" in current.stdout
    assert output.read_text(encoding="utf-8") == pathway_schema_text()
