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


def test_a_visit_waiting_for_attendance_whose_call_the_new_version_lacks_blocks_the_migration():
    visit = """\
id: visit-check
version: {version}
title: Visit check
anchor: surgery_date
locales: [en]
steps:
  - kind: appointment
    id: visit
    mode: clinic
    at: day 10 10:00
    link: "https://booking.example-hospital.test/{{enrollment}}"
    remind: [1d]
    template: {{en: {{subject: Visit, body: "{{{{ link }}}}"}}}}
    on_missed: {{call: missed-visit-call}}
{call}"""
    call = ("  - {kind: call, id: missed-visit-call, team: surgical-ward, script: {en: Book another visit.}}\n")
    current = parse_pathway(visit.format(version=1, call=call), "v1.yaml", SITE.instruments, SITE.teams())
    target = parse_pathway(visit.format(version=2, call=call.replace("missed-visit-call", "other-call"))
                           .replace("{call: missed-visit-call}", "{tag: missed}"), "v2.yaml", SITE.instruments,
                           SITE.teams())
    day_10_noon = datetime(2027, 3, 11, 12, tzinfo=UTC)

    plan = plan_migration(current, target, _timeline_at(day_10_noon, current, open_steps=("visit",)), ANCHOR, "UTC",
                          day_10_noon)

    assert plan.blocked == ["visit#1 is open and its rules call 'missed-visit-call', which version 2 does not have"]


def test_a_planned_touchpoint_of_a_step_after_another_leaves_only_with_its_step():
    source = """\
id: follow-check
version: {version}
title: Follow check
anchor: surgery_date
locales: [en]
steps:
  - {{kind: message, id: welcome, at: day 1 10:00, template: {{en: {{subject: a, body: b}}}}}}
{follow_up}"""
    follow_up = "  - {kind: message, id: follow-up, after: {step: welcome, sent: 2d}, template: {en: {subject: a, body: b}}}\n"
    current = parse_pathway(source.format(version=1, follow_up=follow_up), "v1.yaml", SITE.instruments, SITE.teams())
    keeping = parse_pathway(source.format(version=2, follow_up=follow_up), "v2.yaml", SITE.instruments, SITE.teams())
    dropping = parse_pathway(source.format(version=2, follow_up=""), "v2.yaml", SITE.instruments, SITE.teams())
    day_2 = datetime(2027, 3, 3, 12, tzinfo=UTC)
    timeline = [TimelineEntry(step_id="welcome", occurrence=1, kind="message", due=datetime(2027, 3, 2, 10, tzinfo=UTC),
                              status="sent"),
                TimelineEntry(step_id="follow-up", occurrence=1, kind="message", follows="welcome#1",
                              due=datetime(2027, 3, 4, 10, tzinfo=UTC))]

    kept = plan_migration(current, keeping, timeline, ANCHOR, "UTC", day_2)
    dropped = plan_migration(current, dropping, timeline, ANCHOR, "UTC", day_2)

    assert kept.removed == [] and kept.added == []
    assert [touchpoint.key for touchpoint in dropped.removed] == ["follow-up#1"]


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
