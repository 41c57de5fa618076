"""Events into running enrollments, as plain functions: what an event may carry, what reaches the
workflow, and what its rules decide."""

from __future__ import annotations

import pytest

from language.events import (
    EventInvalid,
    decide_event,
    read_event,
    rule_values_problem,
    values_for_rules,
)
from services.settings import PROJECT_ROOT
from services.site import load_site

SITE = load_site(PROJECT_ROOT / "pathways")
PATHWAY = SITE.load_pathway(PROJECT_ROOT / "tests" / "language" / "validation" / "valid" / "events.yaml")


def test_an_event_is_read_with_every_declared_field():
    values = read_event(PATHWAY, "lab-result", {"hb_g_dl": 9.1, "test": "hb"})

    assert values == {"hb_g_dl": 9.1, "test": "hb", "comment": None}


def test_each_wrong_field_is_named_with_what_is_wrong():
    with pytest.raises(EventInvalid) as refused:
        read_event(PATHWAY, "lab-result", {"hb_g_dl": 91, "test": "iron", "hb_gdl": 9, "comment": 3})

    assert refused.value.errors == {
        "hb_gdl": "not a field of this event; did you mean 'hb_g_dl'?",
        "hb_g_dl": "91 is above the highest plausible value, 25",
        "test": "expected one of hb, full_blood_count, not 'iron'",
        "comment": "expected text of at most 1000 characters",
    }


@pytest.mark.parametrize(("values", "why"), [
    ({"test": "hb"}, "required"),
    ({"hb_g_dl": True, "test": "hb"}, "expected a number, not True"),
    ({"hb_g_dl": "9", "test": "hb"}, "expected a number, not '9'"),
    ({"hb_g_dl": 2, "test": "hb"}, "2 is below the lowest plausible value, 3"),
    ({"hb_g_dl": 10**400, "test": "hb"}, f"expected a number, not {10**400!r}"[:200]),
    ({"hb_g_dl": float("inf"), "test": "hb"}, "expected a number, not inf"),
])
def test_a_number_must_be_there_a_number_and_plausible(values: dict, why: str):
    with pytest.raises(EventInvalid) as refused:
        read_event(PATHWAY, "lab-result", values)
    assert refused.value.errors == {"hb_g_dl": why}


@pytest.mark.parametrize("reading", [read_event, values_for_rules])
def test_an_undeclared_event_is_refused_naming_those_declared(reading):
    with pytest.raises(EventInvalid, match="takes no event 'discharge' \\(it takes: appointment, lab-result\\)"):
        reading(PATHWAY, "discharge", {})


def test_only_the_values_rules_compare_reach_the_workflow_and_never_text():
    values = {"hb_g_dl": 9.1, "test": "hb", "comment": "haemolysed sample?"}

    assert values_for_rules(PATHWAY, "lab-result", values) == {"hb_g_dl": 9.1}
    with pytest.raises(EventInvalid):
        values_for_rules(PATHWAY, "lab-result", values | {"hb_g_dl": "9.1"})


def test_the_workflow_refuses_text_undeclared_fields_and_wrong_types():
    assert rule_values_problem(PATHWAY, "lab-result", {"hb_g_dl": 9.1}) is None
    assert rule_values_problem(PATHWAY, "lab-result", {"comment": "x"}) == \
        "the lab-result event has no field 'comment' that rules read"
    assert rule_values_problem(PATHWAY, "appointment", {"kept": "no"}) == \
        "appointment kept: expected true or false, not 'no'"
    assert rule_values_problem(PATHWAY, "discharge", {}).startswith("pathway events v1 takes no event 'discharge'")


def test_an_events_rules_decide_on_its_values_the_parameters_and_the_tags():
    low = decide_event(PATHWAY, "lab-result", {"hb_g_dl": 9.1}, tags=[])
    normal = decide_event(PATHWAY, "lab-result", {"hb_g_dl": 12.5}, tags=[])
    missed_while_anaemic = decide_event(PATHWAY, "appointment", {"kept": False}, tags=["anaemia"])
    missed = decide_event(PATHWAY, "appointment", {"kept": False}, tags=[])

    assert [(m.trigger, m.actions.tag, m.actions.call) for m in low.matches] == [
        ("rule 1: hb_g_dl < hb_threshold_g_dl", ["anaemia"], ["anaemia-call"])]
    assert normal.matches == () and missed.matches == ()
    assert missed_while_anaemic.matches[0].actions.escalate.reason == "Anaemic mother missed her appointment"
