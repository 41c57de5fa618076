"""rule_problems: what a rule's `when:` may name and compare, given its step's instrument.

The broken-file corpus (validation/invalid/) shows each problem at its line; these tests cover what
must stay allowed, and the edges of deciding that a rule can never match.
"""

from __future__ import annotations

import pytest

from language.instruments.model import Instrument
from language.rule_checks import MAX_COMBINATIONS, RuleScope, rule_problems
from services.settings import PROJECT_ROOT
from services.site import load_site

INSTRUMENTS = load_site(PROJECT_ROOT / "pathways").instruments


def scope(instrument: str | None, kind: str = "questionnaire", tags: tuple[str, ...] = ("mood-risk",),
          **parameters: float) -> RuleScope:
    return RuleScope(kind=kind, instrument=INSTRUMENTS[instrument] if instrument else None,
                     parameters=parameters, tags=frozenset(tags))


@pytest.mark.parametrize(
    ("instrument", "expression"),
    [
        ("phq-9", "q9 >= 1"),  # an answer of the item itself (an option scores 1)
        ("phq-9", "1 <= q9"),
        ("phq-9", "score >= referral or 'self_harm' in flags"),
        ("phq-9", "band in ('moderately_severe', 'severe') and 'mood-risk' not in tags"),
        ("postnatal-check", "lochia == 'heavy'"),  # an option id of an unscored item
        ("postnatal-check", "lochia in ('heavy', 'foul_smelling') or not wound_problem"),
        ("postnatal-check", "wound_problem == True"),
        ("postnatal-check", "temperature >= referral"),
        ("satisfaction", "recommend <= referral"),
    ],
)
def test_rules_over_what_the_instrument_gives_are_allowed(instrument, expression):
    assert rule_problems(expression, scope(instrument, referral=10)) == []


def test_an_answer_that_is_not_an_option_is_named_with_a_hint():
    assert rule_problems("lochia == 'heavvy'", scope("postnatal-check")) == [
        "'heavvy' is not an answer of lochia; did you mean 'heavy'?"]


def test_a_threshold_compared_with_a_parameter_is_still_a_threshold():
    assert rule_problems("referral >= 10", scope("phq-9", referral=10)) == [
        "a threshold must be a named parameter with a source: add `parameters: {referral_threshold: "
        "{value: 10, source: ...}}` and write `referral >= referral_threshold`"]


def test_a_call_with_an_instrument_compares_its_items_and_no_response_names():
    call = scope("blood-pressure", kind="call", systolic_limit=140)
    assert rule_problems("systolic >= systolic_limit or 'mood-risk' in tags", call) == []
    assert rule_problems("score >= systolic_limit", call)[0].startswith("unknown name 'score'")


def test_a_call_without_an_instrument_may_use_tags_and_parameters():
    assert rule_problems("'mood-risk' in tags", scope(None, kind="call")) == []


@pytest.mark.parametrize(
    ("instrument", "expression", "why"),
    [
        ("phq-9", "band == 'mild' and band == 'severe'", "this rule can never match"),
        ("postop-check", "temperature > limit", "temperature runs from 34 to 43 and limit is 45"),
        ("phq-9", "score > limit", "phq-9's total runs from 0 to 27 and limit is 45"),
        ("phq-9", "band >= limit", "this rule can never match"),  # a type error at run time, too
    ],
)
def test_a_rule_no_response_can_match_is_refused(instrument, expression, why):
    problems = rule_problems(expression, scope(instrument, limit=45))
    assert len(problems) == 1 and problems[0].startswith("this rule can never match") and why in problems[0]


def test_arithmetic_is_not_decided():
    assert rule_problems("score - q9 > limit", scope("phq-9", limit=45)) == []


def test_too_many_combinations_are_not_decided():
    # 2^16 combinations of sixteen yes/no items: more than MAX_COMBINATIONS, so nothing is claimed.
    items = " and ".join(f"item_{n}" for n in range(16))
    instrument = Instrument.model_validate({
        "id": "many", "version": 1, "title": {"en": "Many"}, "source": "test", "locales": ["en"],
        "licence": {"terms": "test", "text_public": True},
        "items": [{"id": f"item_{n}", "kind": "yes_no"} for n in range(16)]})
    scope_ = RuleScope(kind="questionnaire", instrument=instrument, parameters={}, tags=frozenset())
    assert 2 ** 16 > MAX_COMBINATIONS
    assert rule_problems(f"{items} and not item_0", scope_) == []


def test_tags_and_flags_are_tried_in_every_combination_the_rule_names():
    three = scope("phq-9", tags=("a", "b", "c"))
    assert rule_problems("'a' in tags and 'b' in tags and 'c' not in tags and 'self_harm' in flags", three) == []
    assert rule_problems("'a' in tags and 'a' not in tags", three)[0].startswith("this rule can never match")
