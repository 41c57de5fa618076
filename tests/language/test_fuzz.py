"""Whatever an author types, validation answers with problems that have a place, never a crash.

Valid pathways are mutated the way hands and editors break YAML (lines deleted, duplicated or
swapped, characters dropped or inserted, values replaced by other types) and fed to parse_pathway.
It must either return a Pathway, which then compiles, or raise DocumentInvalid whose problems all
point at a real line of the text. Any other exception is a defect.
"""

from __future__ import annotations

from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from language.loader import DocumentInvalid
from language.plan import compile_plan
from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site

SITE = load_site(PROJECT_ROOT / "pathways")

REPO = PROJECT_ROOT
BASES = [path.read_text(encoding="utf-8") for path in
         sorted((REPO / "tests" / "language" / "validation" / "valid").glob("*.yaml")) + sorted((REPO / "pathways").glob("*.yaml"))]

# What a value may turn into: other types, YAML syntax, and the characters that trip parsers up.
REPLACEMENTS = [
    "", "~", "null", "0", "-1", "1.5", "99999999999999999999", "true", "no", "[]", "{}", "[a, b]", "{a: 1}",
    "'quoted'", '"unterminated', "[unclosed", "{unclosed: 1", "&anchor value", "*undefined", "!!int abc",
    "!!binary aGk=", "!custom x", "|", ">-", "- item", "? complex", "09:00", "25:00", "day 3 09:00", "day 0 +2h",
    "1M", "P1M", "0s", "36601d", "day 99999 10:00", "09:00-20:00", "20:00-09:00", "Mars/Olympus", "Europe/London",
    "message", "questionnaire", "{{ patient.first_name }}", "{{ unknown }}", "{% if %}", "{{ x.__class__ }}",
    "{% for x in y %}", "\t", "\x07", "\ufeff", "\u2028", "\ud7ff", "\U0001f600", "---", "...", "%YAML 1.1",
]
CHARACTERS = st.sampled_from(list(":-[]{}\"'!&*|>#%@`,?\t \n\\") + ["\x00", "\x07", "\u00e9", "\u3000"]) | st.characters()


@st.composite
def mutated_pathways(draw) -> str:
    lines = draw(st.sampled_from(BASES)).splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if not lines:
            lines = [""]
        index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        line = lines[index]
        mutation = draw(st.sampled_from(["delete", "duplicate", "swap", "indent", "dedent", "value", "insert",
                                         "drop", "truncate"]))
        if mutation == "delete":
            del lines[index]
        elif mutation == "duplicate":
            lines.insert(index, line)
        elif mutation == "swap":
            other = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        elif mutation == "indent":
            lines[index] = draw(st.sampled_from(["  ", " ", "\t", "    "])) + line
        elif mutation == "dedent":
            lines[index] = line[draw(st.integers(min_value=1, max_value=4)):]
        elif mutation == "value":
            key, colon, _ = line.partition(":")
            replacement = draw(st.sampled_from(REPLACEMENTS) | st.text(max_size=12))
            lines[index] = f"{key}: {replacement}\n" if colon else f"{replacement}\n"
        elif mutation == "insert":
            position = draw(st.integers(min_value=0, max_value=len(line)))
            lines[index] = line[:position] + draw(st.text(CHARACTERS, min_size=1, max_size=3)) + line[position:]
        elif mutation == "drop":
            position = draw(st.integers(min_value=0, max_value=max(len(line) - 1, 0)))
            lines[index] = line[:position] + line[position + 1:]
        else:  # truncate: an editor that lost the end of the file
            lines = lines[:index]
    return "".join(lines)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_pathways())
def test_mutated_pathways_are_valid_or_invalid_with_places_never_a_crash(text: str):
    try:
        pathway = parse_pathway(text, "mutated.yaml", SITE.instruments, SITE.teams())
    except DocumentInvalid as invalid:
        assert invalid.problems, "DocumentInvalid without a problem"
        last_line = text.count("\n") + 1
        for problem in invalid.problems:
            assert 1 <= problem.line <= last_line, problem
            assert problem.column >= 1, problem
            assert problem.file == "mutated.yaml" and problem.message, problem
        return
    # Whatever validates must compile, in the pathway's own zone and in another one.
    for zone in (None, "Pacific/Kiritimati"):
        compile_plan(pathway, date(2026, 3, 29), zone)


def test_the_bases_are_valid():
    assert len(BASES) >= 3
    for text in BASES:
        parse_pathway(text, "base.yaml", SITE.instruments, SITE.teams())
