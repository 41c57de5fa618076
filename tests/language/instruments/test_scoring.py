"""Scoring against hand-computed answer sets: every band boundary, every flag on and off.

Expected totals were added up by hand from the published scoring rules (CLINICAL.md), not from the
instrument files, so a wrong score in a file fails here.
"""

from __future__ import annotations

import pytest

from language.instruments.scoring import AnswersInvalid, score

FREQUENCY = {0: "not_at_all", 1: "several_days", 2: "more_than_half_the_days", 3: "nearly_every_day"}


def frequency_answers(scores: list[int]) -> dict[str, str]:
    return {f"q{number}": FREQUENCY[points] for number, points in enumerate(scores, start=1)}


PHQ9 = [
    # item scores q1..q9,          total, band,                flags
    ([0, 0, 0, 0, 0, 0, 0, 0, 0], 0, "minimal", []),
    ([1, 1, 1, 1, 0, 0, 0, 0, 0], 4, "minimal", []),
    ([0, 0, 0, 0, 0, 0, 0, 0, 1], 1, "minimal", ["self_harm"]),
    ([1, 1, 1, 1, 1, 0, 0, 0, 0], 5, "mild", []),
    ([3, 3, 3, 0, 0, 0, 0, 0, 0], 9, "mild", []),
    ([2, 2, 2, 2, 2, 0, 0, 0, 0], 10, "moderate", []),
    ([3, 3, 2, 2, 2, 1, 1, 0, 0], 14, "moderate", []),
    ([3, 3, 3, 3, 3, 0, 0, 0, 0], 15, "moderately_severe", []),
    ([3, 3, 3, 3, 3, 2, 1, 1, 0], 19, "moderately_severe", []),
    ([3, 3, 3, 3, 3, 2, 2, 1, 0], 20, "severe", []),
    ([3, 3, 3, 3, 3, 3, 3, 3, 3], 27, "severe", ["self_harm"]),
]


@pytest.mark.parametrize(("scores", "total", "band", "flags"), PHQ9)
def test_phq9(shipped, scores, total, band, flags):
    result = score(shipped["phq-9"], frequency_answers(scores))
    assert (result.total, result.band, result.flags) == (total, band, flags)
    assert result.items == {f"q{n}": points for n, points in enumerate(scores, start=1)}


def test_phq9_difficulty_question_is_asked_but_not_scored(shipped):
    answers = frequency_answers([3, 3, 3, 3, 3, 3, 3, 3, 0]) | {"difficulty": "extremely_difficult"}
    result = score(shipped["phq-9"], answers)
    assert (result.total, result.band) == (24, "severe")
    assert result.items["difficulty"] == "extremely_difficult"


def test_band_label_in_the_requested_locale(shipped):
    answers = frequency_answers([3, 3, 3, 3, 3, 0, 0, 0, 0])
    assert score(shipped["phq-9"], answers).band_label == "Moderately severe"
    assert score(shipped["phq-9"], answers, locale="zh-CN").band_label == "中重度"


GAD7 = [
    ([0, 0, 0, 0, 0, 0, 0], 0, "minimal"),
    ([1, 1, 1, 1, 0, 0, 0], 4, "minimal"),
    ([2, 2, 1, 0, 0, 0, 0], 5, "mild"),
    ([3, 3, 3, 0, 0, 0, 0], 9, "mild"),
    ([3, 3, 3, 1, 0, 0, 0], 10, "moderate"),
    ([2, 2, 2, 2, 2, 2, 2], 14, "moderate"),
    ([3, 3, 3, 3, 3, 0, 0], 15, "severe"),
    ([3, 3, 3, 3, 3, 3, 3], 21, "severe"),
]


@pytest.mark.parametrize(("scores", "total", "band"), GAD7)
def test_gad7(shipped, scores, total, band):
    result = score(shipped["gad-7"], frequency_answers(scores))
    assert (result.total, result.band, result.flags) == (total, band, [])


# EPDS by hand: options a-d top to bottom; items 1, 2, 4 score a=0 b=1 c=2 d=3; items 3, 5-10 are
# reversed, a=3 b=2 c=1 d=0. Cut-offs: possible >= 10, probable >= 13; self-harm: item 10 > 0.
EPDS = [
    # q1..q10 as a string,  total, flags
    ("aadadddddd", 0, []),
    ("dddddddddd", 9, []),
    ("ddcddddddd", 10, ["possible_depression"]),
    ("ddaddddddd", 12, ["possible_depression"]),
    ("ddadcddddd", 13, ["possible_depression", "probable_depression"]),
    ("aadadddddc", 1, ["self_harm"]),
    ("aaaaaaaaaa", 21, ["possible_depression", "probable_depression", "self_harm"]),
    ("ddadaaaaaa", 30, ["possible_depression", "probable_depression", "self_harm"]),
]


@pytest.mark.parametrize(("letters", "total", "flags"), EPDS)
def test_epds(shipped, letters, total, flags):
    answers = {f"q{number}": letter for number, letter in enumerate(letters, start=1)}
    result = score(shipped["epds"], answers)
    assert (result.total, result.band, result.flags) == (total, None, flags)


def test_epds_cut_offs_can_be_overridden_by_the_caller(shipped):
    answers = {f"q{number}": letter for number, letter in enumerate("ddcddddddd", start=1)}  # total 10
    assert score(shipped["epds"], answers, parameters={"possible_depression_cutoff": 11}).flags == []
    with pytest.raises(ValueError, match="unknown parameters"):
        score(shipped["epds"], answers, parameters={"cutoff": 11})


POSTOP_ALL_NO = {"wound_redness": False, "wound_swelling": False, "wound_discharge": False, "wound_opening": False,
                 "bleeding": False, "breathing_or_chest_pain": False, "calf_pain_or_swelling": False,
                 "vomiting": False}
POSTOP = [
    ({"pain": 0, "temperature": 36.8}, [], "none"),
    ({"pain": 3, "temperature": 37.9}, [], "mild"),
    ({"pain": 4, "temperature": 37.9}, [], "moderate"),
    ({"pain": 6, "temperature": 38.0}, ["fever"], "moderate"),
    ({"pain": 7, "temperature": 36.0}, ["severe_pain"], "severe"),
    ({"pain": 2, "temperature": 37.0, "wound_opening": True}, ["wound_signs"], "mild"),
    ({"pain": 10, "temperature": 40.2, **{key: True for key in POSTOP_ALL_NO}},
     ["fever", "severe_pain", "wound_signs", "bleeding", "chest_symptoms", "calf_symptoms", "vomiting"], "severe"),
]


@pytest.mark.parametrize(("answers", "flags", "pain_category"), POSTOP)
def test_postop_check(shipped, answers, flags, pain_category):
    result = score(shipped["postop-check"], POSTOP_ALL_NO | answers)
    assert (result.total, result.band, result.flags) == (None, None, flags)
    assert result.categories == {"pain": pain_category}
    assert result.items["pain"] == answers["pain"] and result.items["temperature"] == answers["temperature"]


def test_free_text_never_leaves_the_form(shipped):
    answers = POSTOP_ALL_NO | {"pain": 1, "temperature": "36.9", "anything_else": "my neighbour's name is ..."}
    result = score(shipped["postop-check"], answers)
    assert "anything_else" not in result.items
    assert "neighbour" not in result.model_dump_json()


POSTNATAL_NORMAL = {"feeding_method": "breast_only", "breastfeeding_problems": False, "lochia": "normal",
                    "wound_problem": False, "temperature": 36.9, "breast_pain": False,
                    "baby_feeding_poorly": False, "baby_jaundice": False}
POSTNATAL = [
    ({}, []),
    ({"lochia": "heavy"}, ["heavy_bleeding"]),
    ({"lochia": "foul_smelling"}, ["infection_signs"]),
    ({"wound_problem": True, "temperature": 37.9}, ["infection_signs"]),
    ({"temperature": 38.0, "baby_feeding_poorly": True, "baby_jaundice": True}, ["fever", "baby_feeding", "baby_jaundice"]),
    ({"breast_pain": True, "feeding_method": "formula_only", "breastfeeding_problems": None}, ["breast_problem"]),
]


@pytest.mark.parametrize(("changes", "flags"), POSTNATAL)
def test_postnatal_check(shipped, changes, flags):
    result = score(shipped["postnatal-check"], POSTNATAL_NORMAL | changes)
    assert (result.total, result.flags) == (None, flags)
    assert result.items["lochia"] == (POSTNATAL_NORMAL | changes)["lochia"]


SATISFACTION = [
    (0, "very_poor", {"recommend": "detractor", "overall_experience": "negative"}),
    (6, "neither", {"recommend": "detractor", "overall_experience": "neutral"}),
    (7, "poor", {"recommend": "passive", "overall_experience": "negative"}),
    (8, "good", {"recommend": "passive", "overall_experience": "positive"}),
    (9, "very_good", {"recommend": "promoter", "overall_experience": "positive"}),
    (10, "dont_know", {"recommend": "promoter"}),
]


@pytest.mark.parametrize(("recommend", "experience", "categories"), SATISFACTION)
def test_satisfaction(shipped, recommend, experience, categories):
    result = score(shipped["satisfaction"], {"recommend": recommend, "overall_experience": experience,
                                             "comments": "the food"})
    assert result.categories == categories
    assert result.items == {"recommend": recommend, "overall_experience": experience}


def test_incomplete_answers_are_not_scored(shipped):
    with pytest.raises(AnswersInvalid) as caught:
        score(shipped["phq-9"], frequency_answers([0, 0, 0, 0, 0, 0, 0, 0]))
    assert caught.value.errors == {"q9": "please answer this question"}
