"""validate_answers: what the web form shows next to each question it must ask again."""

from __future__ import annotations

import pytest

POSTOP_OK = {"pain": 2, "temperature": 37.2, "wound_redness": False, "wound_swelling": False,
             "wound_discharge": False, "wound_opening": False, "bleeding": False,
             "breathing_or_chest_pain": False, "calf_pain_or_swelling": False, "vomiting": False}


def test_complete_answers_have_no_errors(shipped):
    assert shipped["postop-check"].validate_answers(POSTOP_OK) == {}


@pytest.mark.parametrize(("item", "value", "message"), [
    ("pain", None, "please answer this question"),
    ("pain", "", "please answer this question"),
    ("pain", 11, "choose a whole number from 0 to 10"),
    ("pain", -1, "choose a whole number from 0 to 10"),
    ("pain", 2.5, "choose a whole number from 0 to 10"),
    ("pain", True, "choose a whole number from 0 to 10"),
    ("pain", "seven", "choose a whole number from 0 to 10"),
    ("temperature", 33.9, "enter a number from 34 to 43"),
    ("temperature", 43.1, "enter a number from 34 to 43"),
    ("temperature", "hot", "enter a number from 34 to 43"),
    ("temperature", "nan", "enter a number from 34 to 43"),
    ("temperature", 37.55, "use at most 1 decimal"),
    ("bleeding", "maybe", "answer yes or no"),
    ("bleeding", 1, "answer yes or no"),
    ("anything_else", "x" * 1001, "at most 1000 characters, please"),
    ("anything_else", 42, "enter text"),
])
def test_one_bad_answer(shipped, item, value, message):
    assert shipped["postop-check"].validate_answers(POSTOP_OK | {item: value}) == {item: message}


@pytest.mark.parametrize(("item", "value"), [
    ("pain", "7"), ("pain", 0), ("pain", 10), ("pain", 7.0),
    ("temperature", "37,5"), ("temperature", " 38.0 "), ("temperature", 34), ("temperature", 43),
    ("bleeding", "yes"), ("bleeding", "No"), ("anything_else", "x" * 1000), ("anything_else", "   "),
])
def test_form_spellings_and_edges_are_accepted(shipped, item, value):
    assert shipped["postop-check"].validate_answers(POSTOP_OK | {item: value}) == {}


def test_unknown_option_and_unknown_question(shipped):
    answers = {f"q{n}": "not_at_all" for n in range(1, 10)} | {"q3": "sometimes", "q11": "not_at_all"}
    assert shipped["phq-9"].validate_answers(answers) == {
        "q3": "choose one of: not_at_all, several_days, more_than_half_the_days, nearly_every_day",
        "q11": "not a question of this form",
    }


def test_optional_questions_may_be_left_out(shipped):
    answers = {f"q{n}": "not_at_all" for n in range(1, 10)}
    assert shipped["phq-9"].validate_answers(answers) == {}
    assert shipped["satisfaction"].validate_answers({"recommend": "8", "overall_experience": "good"}) == {}


def test_every_missing_required_answer_is_reported(shipped):
    assert shipped["gad-7"].validate_answers({}) == {f"q{n}": "please answer this question" for n in range(1, 8)}
