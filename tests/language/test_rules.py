"""What rules decide, without Temporal: plain functions of the rules and the values they see."""

from __future__ import annotations

from language.model import CRISIS_POLICY_NAME, Actions, Escalate, Parameter, Rule
from language.rules import (
    CRISIS_ACTIONS,
    Decision,
    Match,
    decide,
    measured_names,
    response_names,
    safety_net,
)

PARAMETERS = {"referral_score": Parameter(value=10, source="Kroenke 2001"),
              "fever": Parameter(value=38.0, source="local protocol")}


def _names(score=None, band=None, flags=(), items=None, tags=()):
    return response_names(PARAMETERS, score=score, band=band, flags=flags, items=items or {}, tags=tags)


def test_response_names_hold_parameters_items_score_band_flags_and_tags_so_far():
    names = _names(score=12, band="moderate", flags=["self_harm"], items={"q9": 2}, tags=["mood-risk"])

    assert names == {"referral_score": 10, "fever": 38.0, "q9": 2, "score": 12, "band": "moderate",
                     "flags": ["self_harm"], "tags": ["mood-risk"]}


def test_measured_names_hold_parameters_values_and_tags_so_far():
    names = measured_names(PARAMETERS, {"temperature": 38.4}, ["post-op"])

    assert names == {"referral_score": 10, "fever": 38.0, "temperature": 38.4, "tags": ["post-op"]}


def test_each_action_kind_comes_back_with_its_rule_and_trigger():
    rules = [Rule(when="score >= referral_score", tag="mood-risk"),
             Rule(when="band == 'moderate'", send="mood-advice"),
             Rule(when="q9 > 0", call="nurse-call"),
             Rule(when="score >= 20", escalate=Escalate(reason="PHQ-9 20 or more", priority="urgent")),
             Rule(when="score >= 15", stop=True)]

    decision = decide(rules, _names(score=21, band="moderate", items={"q9": 1}))

    assert decision.errors == ()
    assert [(m.trigger, m.actions) for m in decision.matches] == [
        ("rule 1: score >= referral_score", rules[0]), ("rule 2: band == 'moderate'", rules[1]),
        ("rule 3: q9 > 0", rules[2]), ("rule 4: score >= 20", rules[3]), ("rule 5: score >= 15", rules[4])]
    assert decision.matches[1].actions.send == ["mood-advice"] and decision.matches[4].actions.stop


def test_only_matching_rules_come_back_in_the_order_written():
    rules = [Rule(when="score >= 20", tag="severe"), Rule(when="score >= 5", tag="mild"),
             Rule(when="score >= 10", tag="moderate")]

    decision = decide(rules, _names(score=12))

    assert [m.trigger for m in decision.matches] == ["rule 2: score >= 5", "rule 3: score >= 10"]


def test_a_rule_over_an_unanswered_item_is_recorded_and_the_others_still_decide():
    rules = [Rule(when="q9 >= 1", tag="self-harm-item"), Rule(when="score >= 10", tag="mood-risk")]

    decision = decide(rules, _names(score=10, items={"q9": None}))

    [error] = decision.errors
    assert error.startswith("rule 1 (q9 >= 1) not evaluated: ") and "NoneType" in error
    assert [m.trigger for m in decision.matches] == ["rule 2: score >= 10"]


def test_tags_so_far_are_seen_and_a_tag_added_by_this_decision_counts_from_the_next_event():
    rules = [Rule(when="'post-op' in tags", tag="mood-risk"), Rule(when="'mood-risk' in tags", tag="twice")]

    first = decide(rules, _names(tags=["post-op"]))
    later = decide(rules, _names(tags=["post-op", "mood-risk"]))

    assert [m.trigger for m in first.matches] == ["rule 1: 'post-op' in tags"]
    assert len(later.matches) == 2


def test_an_unconditional_block_is_one_match_triggered_by_its_event():
    on_expire = Actions(tag="no-response", call="no-response-call")

    assert Decision.always(on_expire, "no answer before expiry") == Decision(
        matches=(Match("no answer before expiry", on_expire),))


def test_crisis_words_or_a_self_harm_flag_escalate_urgently_on_the_crisis_route():
    words = safety_net(Decision(), crisis_words=True, flags=["self_harm"])
    flag = safety_net(Decision(), crisis_words=False, flags=["self_harm"])

    assert words == Decision.always(CRISIS_ACTIONS, "crisis language in free text")
    assert flag == Decision.always(CRISIS_ACTIONS, "self-harm flag")
    escalate = CRISIS_ACTIONS.escalate
    assert (escalate.policy, escalate.priority) == (CRISIS_POLICY_NAME, "urgent")


def test_no_crisis_escalation_without_words_or_flag():
    assert safety_net(Decision(), crisis_words=False, flags=["low_mood"]) == Decision()


def test_no_second_crisis_escalation_when_a_rule_already_routed_the_response_to_crisis():
    rules = [Rule(when="'self_harm' in flags", escalate=Escalate(reason="Self-harm answer", policy=CRISIS_POLICY_NAME)),
             Rule(when="score >= 10", escalate=Escalate(reason="PHQ-9 10 or more", policy="mood"))]
    routed = decide(rules, _names(score=12, flags=["self_harm"]))
    elsewhere = decide(rules[1:], _names(score=12, flags=["self_harm"]))

    assert safety_net(routed, crisis_words=True, flags=["self_harm"]) == Decision()
    assert safety_net(elsewhere, crisis_words=False, flags=["self_harm"]).matches[0].actions == CRISIS_ACTIONS
