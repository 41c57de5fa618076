"""The migration plan as a pure function: what changes for one enrollment, and what keeps it from migrating."""

from datetime import UTC, date, datetime, timedelta

from language.migration import describe, plan_migration
from language.plan import compile_plan
from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site
from tests.workflows.migration_versions import VERSION_2, VERSION_3
from workflows.contracts import TimelineEntry

SITE = load_site(PROJECT_ROOT / "pathways")
V2 = parse_pathway(VERSION_2, "v2.yaml", SITE.instruments, SITE.teams())
V3 = parse_pathway(VERSION_3, "v3.yaml", SITE.instruments, SITE.teams())
POSTNATAL = SITE.load_pathway(PROJECT_ROOT / "pathways" / "postnatal-42d.yaml")
ANCHOR = date(2027, 3, 1)
DAY_10_NOON = datetime(2027, 3, 11, 12, tzinfo=UTC)


def _timeline_at(now: datetime, pathway=V2, open_steps=("mood",)) -> list[TimelineEntry]:
    """The timeline a run would have at `now`: the past sent (or open), the rest planned."""
    return [TimelineEntry(step_id=t.step_id, occurrence=t.occurrence, kind=t.kind, due=t.due,
                          status="planned" if t.due > now else "open" if t.step_id in open_steps else "sent")
            for t in compile_plan(pathway, ANCHOR, "UTC")]


def test_the_report_names_every_change_with_dates_in_the_patients_zone():
    plan = plan_migration(V2, V3, _timeline_at(DAY_10_NOON), ANCHOR, "UTC", DAY_10_NOON)

    assert describe(plan, "Asia/Shanghai") == [
        "recovery-check v2 -> v3",
        "  renamed  week2-note -> two-week-note",
        "  added    day14-check#1 questionnaire 2027-03-15 18:00",
        "  removed  day21-message#1 message 2027-03-22 18:00",
        "  moved    week2-note#1 2027-03-13 18:00 -> two-week-note#1 2027-03-13 18:00",
        "  kept     mood#1 questionnaire open: finishes under v2's rules",
        "  rules    day14-check change",
        "  threshold referral_score: 10 -> 12",
        "  can be rolled back until 2027-03-13 18:00",
    ]


def test_touchpoints_already_past_are_neither_added_nor_repeated():
    # Migrated on day 13, after the two-week note went: it is not sent again under its new name.
    day_13 = DAY_10_NOON + timedelta(days=3)
    plan = plan_migration(V2, V3, _timeline_at(day_13, open_steps=()), ANCHOR, "UTC", day_13)

    assert [t.key for t in plan.added] == ["day14-check#1"] and plan.moved == []
    assert [t.key for t in plan.removed] == ["day21-message#1"] and plan.kept == []


def test_an_open_step_the_new_version_lacks_blocks_the_migration():
    without_mood = V3.model_copy(update={"steps": [step for step in V3.steps if step.id != "mood"]})

    plan = plan_migration(V2, without_mood, _timeline_at(DAY_10_NOON), ANCHOR, "UTC", DAY_10_NOON)

    assert plan.blocked == ["mood#1 is open and version 3 no longer has step 'mood'"]


def test_an_open_step_whose_rules_send_a_step_the_new_version_lacks_blocks_the_migration():
    sends = V2.model_copy(update={"steps": [
        step.model_copy(update={"on": [step.on[0].model_copy(update={"send": ["day21-message"]})]})
        if step.id == "mood" else step for step in V2.steps]})

    plan = plan_migration(sends, V3, _timeline_at(DAY_10_NOON, sends), ANCHOR, "UTC", DAY_10_NOON)

    assert plan.blocked == ["mood#1 is open and its rules send 'day21-message', which version 3 does not have"]


def test_only_a_newer_version_of_the_same_pathway_is_a_migration():
    entries = _timeline_at(DAY_10_NOON)
    other = V3.model_copy(update={"id": "other-pathway"})

    assert plan_migration(V3, V2, entries, ANCHOR, "UTC", DAY_10_NOON).blocked == [
        "the enrollment is on version 3; migrations only go to a newer version"]
    assert plan_migration(V2, other, entries, ANCHOR, "UTC", DAY_10_NOON).blocked == [
        "version 3 is of pathway 'other-pathway', not 'recovery-check'"]


def test_a_touchpoint_already_due_but_not_yet_sent_goes_as_planned():
    # The worker was down at day 12 10:00: the two-week note is late, not removed or renamed under it.
    late = DAY_10_NOON + timedelta(days=2)
    entries = [e.model_copy(update={"status": "planned"}) if e.step_id == "week2-note" else e
               for e in _timeline_at(late, open_steps=())]

    plan = plan_migration(V2, V3, entries, ANCHOR, "UTC", late)

    assert plan.moved == [] and [t.key for t in plan.removed] == ["day21-message#1"]
    assert [t.key for t in plan.added] == ["day14-check#1"]


def test_a_change_to_an_events_rules_is_named_in_the_plan():
    with_events = V3.model_copy(update={"events": POSTNATAL.events, "on_event": POSTNATAL.on_event, "version": 4})
    stricter = with_events.model_copy(update={"version": 5, "on_event": [
        rule.model_copy(update={"when": "systolic >= bp_systolic_mmhg"}) for rule in POSTNATAL.on_event]})

    added = plan_migration(V3, with_events, _timeline_at(DAY_10_NOON, V3), ANCHOR, "UTC", DAY_10_NOON)
    changed = plan_migration(with_events, stricter, _timeline_at(DAY_10_NOON, V3), ANCHOR, "UTC", DAY_10_NOON)
    same = plan_migration(with_events, with_events.model_copy(update={"version": 5}), _timeline_at(DAY_10_NOON, V3),
                          ANCHOR, "UTC", DAY_10_NOON)

    assert "on_event bp-reading" in added.rules_changed and "on_event bp-reading" in changed.rules_changed
    assert "  rules    on_event bp-reading change" in describe(changed, "UTC")
    assert not [name for name in same.rules_changed if name.startswith("on_event")]
