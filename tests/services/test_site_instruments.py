"""Loading instruments: the shipped files, every problem with its line, and licensed local text."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from language.instruments.checks import missing_text_problem
from language.instruments.model import Instrument
from language.instruments.scoring import score
from language.loader import DocumentInvalid
from services.settings import PROJECT_ROOT
from services.site import load_instrument, load_instruments

INSTRUMENTS_DIR = PROJECT_ROOT / "pathways" / "instruments"
TEXT_TEMPLATES_DIR = INSTRUMENTS_DIR / "text-templates"
INVALID = sorted((Path(__file__).parent / "invalid-instruments").glob("*.yaml"))
EXPECT = re.compile(r"#\s*expect:\s*(.+)$")


def test_the_shipped_instruments(shipped):
    assert sorted(shipped) == ["blood-pressure", "epds", "gad-7", "phq-9", "postnatal-check", "postop-check",
                               "satisfaction"]
    assert {instrument.total_range() for instrument in (shipped["phq-9"], shipped["gad-7"], shipped["epds"])} == {
        (0, 27), (0, 21), (0, 30)}
    for instrument_id in ("phq-9", "gad-7", "postop-check", "postnatal-check", "satisfaction", "blood-pressure"):
        assert shipped[instrument_id].text_available("en") and shipped[instrument_id].text_available("zh-CN")


def test_phq_and_gad_keep_their_attribution(shipped):
    line = ("Developed by Drs. Robert L. Spitzer, Janet B.W. Williams, Kurt Kroenke and colleagues, "
            "with an educational grant from Pfizer Inc.")
    assert shipped["phq-9"].attribution == shipped["gad-7"].attribution == line


def test_no_epds_wording_is_committed(shipped):
    epds = shipped["epds"]
    assert not epds.licence.text_public and not epds.instructions
    assert all(not item.text and all(not option.label for option in item.options) for item in epds.items)
    assert not epds.text_available("en") and not epds.text_available("zh-CN")


def test_satisfaction_avoids_the_trademark():
    for path in [INSTRUMENTS_DIR / "satisfaction.yaml"]:
        text = path.read_text(encoding="utf-8").lower()
        assert "net promoter" not in text and not re.search(r"\bnps\b", text)


@pytest.mark.parametrize("path", INVALID, ids=[path.stem for path in INVALID])
def test_invalid_instrument_reports_each_problem_on_its_line(path, empty_dir):
    """Each `# expect: field: message` comment sits on the line its problem must be reported on."""
    expected = [(number, match[1].strip()) for number, line in enumerate(path.read_text().splitlines(), start=1)
                if (match := EXPECT.search(line)) and not line.startswith("#")]
    assert expected, "an invalid example must say what it expects"
    with pytest.raises(DocumentInvalid) as caught:
        load_instrument(path, local_dir=empty_dir)
    found = [(problem.line, f"{problem.field}: {problem.message}") for problem in caught.value.problems]
    unmatched = [(line, text) for line, text in expected
                 if not any(line == at and text in printed for at, printed in found)]
    extra = [(at, printed) for at, printed in found
             if not any(line == at and text in printed for line, text in expected)]
    assert (unmatched, extra) == ([], []), "\n".join(str(problem) for problem in caught.value.problems)


def test_problems_name_the_file_and_line(empty_dir):
    with pytest.raises(DocumentInvalid) as caught:
        load_instrument(Path(__file__).parent / "invalid-instruments" / "band-gap.yaml", local_dir=empty_dir)
    assert str(caught.value).startswith(f"{Path(__file__).parent / 'invalid-instruments' / 'band-gap.yaml'}:21:")


def test_load_instruments_reports_every_file(tmp_path):
    for path in INVALID[:2]:
        shutil.copy(path, tmp_path)
    with pytest.raises(DocumentInvalid) as caught:
        load_instruments(tmp_path)
    assert {Path(problem.file).name for problem in caught.value.problems} == {path.name for path in INVALID[:2]}


def test_instrument_schema_for_editors_describes_every_field():
    schema = Instrument.model_json_schema()
    for name, definition in schema["$defs"].items():
        for field, spec in definition.get("properties", {}).items():
            assert spec.get("description"), f"{name}.{field} has no description"


# --- licensed text supplied locally -------------------------------------------------------------


@pytest.fixture
def hospital(tmp_path) -> tuple[Path, Path]:
    """An installation with the shipped EPDS and an empty pathways/local/instruments/."""
    instruments, local = tmp_path / "instruments", tmp_path / "local" / "instruments"
    instruments.mkdir()
    local.mkdir(parents=True)
    shutil.copy(INSTRUMENTS_DIR / "epds.yaml", instruments)
    shutil.copytree(TEXT_TEMPLATES_DIR, instruments / TEXT_TEMPLATES_DIR.name)
    return instruments, local


def filled_template(word: str) -> dict:
    """The committed template with every empty entry filled, as a hospital would."""
    def fill(node):
        if isinstance(node, dict):
            return {key: fill(value) for key, value in node.items()}
        return word if node == "" else node
    data = yaml.safe_load((TEXT_TEMPLATES_DIR / "epds.yaml").read_text(encoding="utf-8"))
    return fill(data)


def test_missing_text_problem_says_where_the_text_goes(hospital):
    instruments, local = hospital
    epds = load_instruments(instruments)["epds"]
    problem = missing_text_problem(epds, "zh-CN")
    assert str(local / "epds.zh-CN.yaml") in problem
    assert str(instruments / "text-templates" / "epds.yaml") in problem
    assert "items.q1.text" in problem and "items.q1.options.a" in problem
    assert "not offered" in missing_text_problem(epds, "fr")


def test_local_text_is_merged_for_its_locale_only(hospital):
    instruments, local = hospital
    (local / "epds.zh-CN.yaml").write_text(yaml.safe_dump(filled_template("文本"), allow_unicode=True), encoding="utf-8")
    epds = load_instruments(instruments)["epds"]
    assert epds.text_available("zh-CN") and missing_text_problem(epds, "zh-CN") == ""
    assert not epds.text_available("en")
    assert epds.item("q10").text == {"zh-CN": "文本"}
    assert epds.item("q3").option("d").label == {"zh-CN": "文本"}
    answers = {f"q{number}": "a" for number in range(1, 11)}
    assert score(epds, answers).total == 21  # scoring is untouched by the text


def test_the_template_matches_the_instrument(shipped):
    template = yaml.safe_load((TEXT_TEMPLATES_DIR / "epds.yaml").read_text(encoding="utf-8"))
    epds = shipped["epds"]
    assert set(template["items"]) == {item.id for item in epds.items}
    for item in epds.items:
        assert set(template["items"][item.id]["options"]) == {option.id for option in item.options}


def test_an_unfilled_or_wrong_local_file_is_refused_with_its_line(hospital):
    instruments, local = hospital
    text = filled_template("x")
    text["items"]["q1"]["options"]["e"] = "a fifth answer"
    text["items"]["q11"] = {"text": "an eleventh question"}
    text["items"]["q2"]["text"] = ""
    path = local / "epds.en.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False), encoding="utf-8")
    lines = path.read_text().splitlines()
    with pytest.raises(DocumentInvalid) as caught:
        load_instruments(instruments)
    problems = {(problem.line, problem.field): problem.message for problem in caught.value.problems}
    assert problems == {
        (lines.index("  q2:") + 2, "items.q2.text"): "string should have at least 1 character",
    }  # schema first: the cross-checks run once the file has the right shape
    text["items"]["q2"]["text"] = "fixed"
    path.write_text(yaml.safe_dump(text, sort_keys=False), encoding="utf-8")
    lines = path.read_text().splitlines()
    with pytest.raises(DocumentInvalid) as caught:
        load_instruments(instruments)
    problems = {(problem.line, problem.field): problem.message for problem in caught.value.problems}
    assert problems == {
        (lines.index("      e: a fifth answer") + 1, "items.q1.options.e"): "item 'q1' has no option 'e' (it has a, b, c, d)",
        (lines.index("  q11:") + 1, "items.q11"): "epds has no item 'q11' (it has q1, q2, q3, q4, q5, q6, q7, q8, q9, q10)",
    }


def test_stray_local_files_are_reported(hospital):
    instruments, local = hospital
    (local / "epds.fr.yaml").write_text("instructions: Bonjour\n", encoding="utf-8")
    (local / "phq9.en.yaml").write_text("instructions: Hello\n", encoding="utf-8")
    with pytest.raises(DocumentInvalid) as caught:
        load_instruments(instruments)
    messages = {Path(problem.file).name: problem.message for problem in caught.value.problems}
    assert messages.keys() == {"epds.fr.yaml", "phq9.en.yaml"}
    assert "'fr' (from the file name) is not among the locales of epds" in messages["epds.fr.yaml"]
    assert "not the text of an instrument" in messages["phq9.en.yaml"]
