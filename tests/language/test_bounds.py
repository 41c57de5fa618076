"""Templates and rule expressions an author writes cannot make a message, a validation or a workflow
task run away: refused at validation with a reason, and again when rendering or evaluating."""

from __future__ import annotations

import time

import pytest

from language.expressions import evaluate, expression_problems
from language.templates import MAXIMUM_OUTPUT, TemplateRefused, render, template_problems

CONTEXT = {"patient": {"first_name": "Wei"}, "pathway": {"id": "p", "title": "P"}, "step": {"id": "s", "occurrence": 2}}
RUNAWAY_TEMPLATES = {
    "{{ 'a' * 50000000 }}": "'*' is not allowed",
    "{{ 9 ** 3999999 }}": "'**' is not allowed",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}": "a for loop",
    '{{ "a" | center(100000000) }}': "filter 'center' is not allowed",
    '{{ "%099999999d" % 1 }}': "'%' is not allowed",
    "{{ lipsum(100000) }}": "a call",
}


@pytest.mark.parametrize("source", RUNAWAY_TEMPLATES)
def test_a_runaway_template_is_refused_at_validation_and_when_rendered(source: str):
    started = time.monotonic()
    assert any(RUNAWAY_TEMPLATES[source] in problem for problem in template_problems(source))
    with pytest.raises(TemplateRefused):
        render(source, CONTEXT)
    assert time.monotonic() - started < 1


def test_ordinary_templates_still_render():
    source = "{% if step.occurrence > 1 %}Again, {% endif %}{{ patient.first_name | upper }}: {{ pathway.title }}"
    assert template_problems(source) == []
    assert render(source, CONTEXT) == "Again, WEI: P"


def test_a_message_is_capped_in_length():
    long_line = "{{ patient.first_name }}" + "x" * 20_000
    assert template_problems(long_line * 3) == [f"a template of {len(long_line) * 3} characters is too long for a "
                                                 f"message; at most 20000"]
    with pytest.raises(TemplateRefused, match=str(MAXIMUM_OUTPUT)):
        render("{{ patient.first_name }}", {"patient": {"first_name": "W" * (MAXIMUM_OUTPUT + 1)}})


@pytest.mark.parametrize(("expression", "because"), [
    ("9 ** 3999999", "bitwise operators are not allowed"), ("1 << 100000000", "bitwise operators are not allowed"),
    ("'a' * 50000000 == score", "multiplies numbers"),
    ("score >= 1" + " or score >= 1" * 60, "too long"),
])
def test_a_runaway_expression_is_refused_at_validation_and_when_evaluated(expression: str, because: str):
    started = time.monotonic()
    problems = expression_problems(expression, ["score"])
    assert any(because in problem for problem in problems), problems
    with pytest.raises(Exception):  # noqa: B017,PT011 - simpleeval's own error types, or ValueError/TypeError
        evaluate(expression, {"score": 3})
    assert time.monotonic() - started < 1


def test_arithmetic_on_numbers_still_works():
    assert expression_problems("score * 2 - 1 >= 10 and 'x' not in flags", ["score", "flags"]) == []
    assert evaluate("score * 2 - 1 >= 10", {"score": 6}) is True
