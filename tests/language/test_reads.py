"""Which values a step's rules read: all that a response or call outcome carries to its workflow."""

from __future__ import annotations

from language.reads import names_read, values_read
from services.settings import PROJECT_ROOT
from services.site import load_site

SITE = load_site(PROJECT_ROOT / "pathways")
POSTNATAL = SITE.load_pathway(PROJECT_ROOT / "pathways" / "postnatal-42d.yaml")


def test_a_step_reads_the_names_its_rules_use_and_no_others():
    assert names_read(POSTNATAL, "postnatal-check") == {
        "lochia", "temperature", "fever_celsius", "wound_problem", "breast_pain", "baby_feeding_poorly",
        "baby_jaundice"}
    assert names_read(POSTNATAL, "phq9") == {"score", "phq9_referral_score", "flags"}
    assert names_read(POSTNATAL, "no-response-call") == {"systolic", "bp_systolic_mmhg", "diastolic",
                                                         "bp_diastolic_mmhg"}
    assert names_read(POSTNATAL, "welcome") == frozenset()  # a message has no rules


def test_the_whole_pathway_reads_what_its_steps_read():
    assert names_read(POSTNATAL) == set().union(*(names_read(POSTNATAL, step.id) for step in POSTNATAL.steps))


def test_only_values_rules_read_are_kept_an_unanswered_one_included():
    answers = {"feeding_method": "breast", "lochia": "normal", "temperature": None, "anything_else": "tired",
               "breast_pain": False}
    assert values_read(POSTNATAL, "postnatal-check", answers) == {"lochia": "normal", "temperature": None,
                                                                  "breast_pain": False}
    assert values_read(POSTNATAL, "phq9", {"q1": 3, "q9": 0, "difficulty": "very"}) == {}
