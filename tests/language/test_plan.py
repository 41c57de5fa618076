"""compile_plan: from a pathway, an anchor and a zone to dated touchpoints.

Expected instants are written out by hand in UTC and in local time, so that a reader can check
them against a calendar. Europe/London changes clocks on 2026-03-29 at 01:00 UTC (GMT → BST) and
on 2026-10-25 at 01:00 UTC (BST → GMT); Asia/Shanghai has no DST (UTC+8).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from language.model import Pathway
from language.plan import Touchpoint, anchor_instant, compile_plan, questionnaire_window

UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def message(step_id: str, at: str, **extra) -> dict:
    return {"kind": "message", "id": step_id, "at": at, "template": {"en": {"subject": "s", "body": "b"}}, **extra}


def pathway(*steps: dict, timezone: str = "UTC", send_window: str | None = None) -> Pathway:
    data = {"id": "p", "version": 1, "title": "P", "anchor": "surgery_date", "timezone": timezone,
            "locales": ["en"], "steps": list(steps)}
    if send_window:
        data["send_window"] = send_window
    return Pathway.model_validate(data)


def dues(touchpoints: list[Touchpoint], zone: ZoneInfo | None = None) -> list[datetime]:
    return [t.due.astimezone(zone) if zone else t.due for t in touchpoints]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Repeats


def test_daily_repeat_keeps_the_local_clock_across_spring_forward():
    plan = compile_plan(pathway(message("daily", "day 0 10:00", repeat={"every": "1d", "times": 4}),
                                timezone="Europe/London"), date(2026, 3, 27))
    assert [t.key for t in plan] == ["daily#1", "daily#2", "daily#3", "daily#4"]
    assert dues(plan) == [utc(2026, 3, 27, 10), utc(2026, 3, 28, 10), utc(2026, 3, 29, 9), utc(2026, 3, 30, 9)]
    assert {(d.hour, d.minute) for d in dues(plan, LONDON)} == {(10, 0)}


def test_daily_repeat_keeps_the_local_clock_across_fall_back():
    plan = compile_plan(pathway(message("daily", "day 0 10:00", repeat={"every": "1d", "times": 3}),
                                timezone="Europe/London"), date(2026, 10, 24))
    assert dues(plan) == [utc(2026, 10, 24, 9), utc(2026, 10, 25, 10), utc(2026, 10, 26, 10)]
    assert {(d.hour, d.minute) for d in dues(plan, LONDON)} == {(10, 0)}


def test_weekly_repeat_keeps_the_local_clock_across_dst():
    plan = compile_plan(pathway(message("weekly", "day 0 08:30", repeat={"every": "1w", "times": 3}),
                                timezone="Europe/London"), date(2026, 3, 22))
    assert dues(plan, LONDON) == [datetime(2026, 3, 22, 8, 30, tzinfo=LONDON),
                                  datetime(2026, 3, 29, 8, 30, tzinfo=LONDON),
                                  datetime(2026, 4, 5, 8, 30, tzinfo=LONDON)]


def test_sub_day_repeats_are_elapsed_time_across_dst():
    # every 12h means 12 hours apart, so the local clock moves when the clocks change.
    anchor = datetime(2026, 3, 28, 20, 0, tzinfo=LONDON)
    plan = compile_plan(pathway(message("meds", "0s", repeat={"every": "12h", "times": 3}),
                                timezone="Europe/London"), anchor)
    assert dues(plan) == [utc(2026, 3, 28, 20), utc(2026, 3, 29, 8), utc(2026, 3, 29, 20)]
    assert [d.hour for d in dues(plan, LONDON)] == [20, 9, 21]


def test_mixed_day_and_hour_repeats_are_elapsed_time():
    plan = compile_plan(pathway(message("odd", "day 0 06:00", repeat={"every": "1d12h", "times": 3}),
                                timezone="Europe/London"), date(2026, 3, 28))
    assert dues(plan) == [utc(2026, 3, 28, 6), utc(2026, 3, 29, 18), utc(2026, 3, 31, 6)]


def test_occurrences_are_numbered_from_one():
    plan = compile_plan(pathway(message("x", "day 1 10:00", repeat={"every": "2d", "times": 3})), date(2026, 1, 1))
    assert [(t.step_id, t.occurrence, t.kind) for t in plan] == [("x", 1, "message"), ("x", 2, "message"),
                                                                 ("x", 3, "message")]
    assert dues(plan) == [utc(2026, 1, 2, 10), utc(2026, 1, 4, 10), utc(2026, 1, 6, 10)]


# Send windows


@pytest.mark.parametrize(
    ("at", "local_due"),
    [
        ("day 1 03:00", datetime(2026, 5, 2, 9, 0)),  # before the window: later the same day
        ("day 1 21:00", datetime(2026, 5, 3, 9, 0)),  # after it: the next morning
        ("day 1 20:01", datetime(2026, 5, 3, 9, 0)),
        ("day 1 20:00", datetime(2026, 5, 2, 20, 0)),  # the window includes its closing minute
        ("day 1 09:00", datetime(2026, 5, 2, 9, 0)),
        ("day 1 12:34", datetime(2026, 5, 2, 12, 34)),
        ("day 1 00:00", datetime(2026, 5, 2, 9, 0)),
    ],
)
def test_send_window_moves_touchpoints_into_the_window(at, local_due):
    plan = compile_plan(pathway(message("m", at), timezone="Asia/Shanghai", send_window="09:00-20:00"),
                        date(2026, 5, 1))
    assert dues(plan, SHANGHAI) == [local_due.replace(tzinfo=SHANGHAI)]


def test_send_window_is_the_patients_local_hours():
    # The pathway's default zone is Shanghai; a London patient is contacted in London hours.
    plan = compile_plan(pathway(message("m", "day 1 03:00"), timezone="Asia/Shanghai", send_window="09:00-20:00"),
                        date(2026, 5, 1), "Europe/London")
    assert dues(plan) == [utc(2026, 5, 2, 8)]  # 09:00 BST


def test_send_window_shifts_each_occurrence_of_a_repeat():
    plan = compile_plan(pathway(message("m", "day 1 06:00", repeat={"every": "6h", "times": 4}),
                                timezone="Asia/Shanghai", send_window="09:00-20:00"), date(2026, 5, 1))
    assert [d.replace(tzinfo=None) for d in dues(plan, SHANGHAI)] == [
        datetime(2026, 5, 2, 9), datetime(2026, 5, 2, 12), datetime(2026, 5, 2, 18), datetime(2026, 5, 3, 9)]


def test_send_window_on_a_relative_touchpoint():
    anchor = datetime(2026, 5, 1, 19, 0, tzinfo=SHANGHAI)
    plan = compile_plan(pathway(message("m", "day 0 +2h"), timezone="Asia/Shanghai", send_window="09:00-20:00"),
                        anchor)
    assert dues(plan, SHANGHAI) == [datetime(2026, 5, 2, 9, 0, tzinfo=SHANGHAI)]


def test_without_a_send_window_night_touchpoints_stay_at_night():
    plan = compile_plan(pathway(message("m", "day 1 03:00"), timezone="Asia/Shanghai"), date(2026, 5, 1))
    assert dues(plan, SHANGHAI) == [datetime(2026, 5, 2, 3, 0, tzinfo=SHANGHAI)]


# Ordering


def test_touchpoints_come_in_due_order_with_ties_in_file_order():
    plan = compile_plan(pathway(
        message("late", "day 2 10:00"),
        message("first-of-tie", "day 1 10:00"),
        message("second-of-tie", "day 1 10:00"),
        message("daily", "day 0 10:00", repeat={"every": "1d", "times": 3}),
        message("early", "day 0 +1h"),
    ), date(2026, 1, 1))
    assert [t.key for t in plan] == ["early#1", "daily#1", "first-of-tie#1", "second-of-tie#1", "daily#2",
                                     "late#1", "daily#3"]
    assert dues(plan) == sorted(dues(plan))


def test_compiling_is_deterministic():
    p = pathway(message("a", "day 1 10:00", repeat={"every": "1d", "times": 5}), message("b", "day 0 +2h"),
                timezone="Europe/London", send_window="09:00-20:00")
    assert compile_plan(p, date(2026, 3, 27)) == compile_plan(p, date(2026, 3, 27))


def test_every_due_is_aware_utc():
    plan = compile_plan(pathway(message("a", "day 1 10:00"), timezone="Asia/Shanghai"), date(2026, 5, 1))
    assert all(t.due.utcoffset() == timedelta(0) for t in plan)


# Zones and anchors


def test_pathway_zone_is_the_default():
    plan = compile_plan(pathway(message("m", "day 3 09:00"), timezone="Asia/Shanghai"), date(2026, 5, 1))
    assert dues(plan) == [utc(2026, 5, 4, 1)]


def test_patient_zone_wins_over_the_pathway_default():
    plan = compile_plan(pathway(message("m", "day 3 09:00"), timezone="Asia/Shanghai"), date(2026, 5, 1),
                        "America/New_York")
    assert dues(plan) == [utc(2026, 5, 4, 13)]  # 09:00 EDT


def test_date_anchor_is_midnight_in_the_patients_zone():
    assert anchor_instant(date(2026, 5, 1), "Asia/Shanghai") == datetime(2026, 5, 1, 0, 0, tzinfo=SHANGHAI)
    plan = compile_plan(pathway(message("m", "day 0 +2h"), timezone="Asia/Shanghai"), date(2026, 5, 1))
    assert dues(plan) == [utc(2026, 4, 30, 18)]  # 02:00 in Shanghai


def test_date_anchor_where_midnight_does_not_exist():
    # Chile moves its clocks from 00:00 to 01:00 on 2026-09-06: that day starts at 01:00.
    santiago = "America/Santiago"
    start = anchor_instant(date(2026, 9, 6), santiago)
    assert start.astimezone(UTC) == utc(2026, 9, 6, 4)
    assert (start.hour, start.utcoffset()) == (1, timedelta(hours=-3))
    plan = compile_plan(pathway(message("m", "day 0 +1h")), date(2026, 9, 6), santiago)
    assert dues(plan) == [utc(2026, 9, 6, 5)]


def test_relative_time_from_a_datetime_anchor():
    anchor = datetime(2026, 5, 1, 15, 20, tzinfo=SHANGHAI)
    plan = compile_plan(pathway(message("now", "day 0 +2h"), message("tomorrow", "day 1 +30m"),
                                message("seconds", "30s"), timezone="Asia/Shanghai"), anchor)
    assert {t.step_id: t.due for t in plan} == {
        "now": utc(2026, 5, 1, 9, 20),
        "tomorrow": utc(2026, 5, 2, 7, 50),
        "seconds": utc(2026, 5, 1, 7, 20, 30),
    }


def test_a_datetime_anchor_in_another_zone_is_converted_not_relabelled():
    anchor = datetime(2026, 5, 1, 20, 0, tzinfo=UTC)  # already 2 May, 04:00 in Shanghai
    plan = compile_plan(pathway(message("m", "day 0 10:00"), timezone="Asia/Shanghai"), anchor)
    assert dues(plan) == [utc(2026, 5, 2, 2)]


def test_a_naive_datetime_anchor_is_local_time_in_the_patients_zone():
    plan = compile_plan(pathway(message("m", "day 0 +2h"), timezone="Asia/Shanghai"), datetime(2026, 5, 1, 15, 0))
    assert dues(plan) == [utc(2026, 5, 1, 9)]


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [
        # 00:30 GMT; two hours later is 02:30 UTC, which is 03:30 BST (not the wall clock's 02:30 BST).
        (datetime(2026, 3, 29, 0, 30, tzinfo=LONDON), utc(2026, 3, 29, 2, 30)),
        # 00:30 BST; two hours later is 01:30 UTC, which is 01:30 GMT (not 02:30 GMT, three hours on).
        (datetime(2026, 10, 25, 0, 30, tzinfo=LONDON), utc(2026, 10, 25, 1, 30)),
    ],
)
def test_relative_offsets_are_elapsed_time_across_dst(anchor, expected):
    plan = compile_plan(pathway(message("m", "day 0 +2h"), timezone="Europe/London"), anchor)
    assert dues(plan) == [expected]
    assert plan[0].due - anchor == timedelta(hours=2)


def test_day_offsets_are_calendar_days_across_dst():
    # `day 1 +0h` from 12:00 GMT on the Saturday is 12:00 BST on the Sunday: 23 hours later.
    anchor = datetime(2026, 3, 28, 12, 0, tzinfo=LONDON)
    plan = compile_plan(pathway(message("m", "day 1"), timezone="Europe/London"), anchor)
    assert dues(plan, LONDON) == [datetime(2026, 3, 29, 12, 0, tzinfo=LONDON)]
    assert plan[0].due - anchor == timedelta(hours=23)


def test_a_naive_anchor_in_the_spring_forward_gap_is_a_real_instant():
    # 01:30 on 2026-03-29 never happens in London; the plan must still be a real, ordered instant.
    plan = compile_plan(pathway(message("m", "0s"), timezone="Europe/London"), datetime(2026, 3, 29, 1, 30))
    local = plan[0].due.astimezone(LONDON)
    assert local.astimezone(UTC) == plan[0].due
    assert local.replace(tzinfo=None) != datetime(2026, 3, 29, 1, 30)


def test_a_century_long_pathway_compiles():
    # Validation allows up to timing.MAX_DAYS; the compiler must get there without overflowing.
    kiritimati = ZoneInfo("Pacific/Kiritimati")  # UTC+14: the furthest ahead a local date can be
    p = pathway(message("m", "day 100 10:00", repeat={"every": "100d", "times": 365}), timezone="Pacific/Kiritimati")
    plan = compile_plan(p, date(2026, 1, 1))
    assert len(plan) == 365
    assert plan[-1].due.astimezone(kiritimati) == datetime(2125, 12, 8, 10, 0, tzinfo=kiritimati)
    assert date(2125, 12, 8) - date(2026, 1, 1) == timedelta(days=100 + 364 * 100)


def test_steps_without_a_time_are_not_scheduled():
    # A message sent only by a questionnaire rule has no `at` of its own.
    p = pathway(message("scheduled", "day 1 10:00"),
                {"kind": "message", "id": "on-demand", "template": {"en": {"subject": "s", "body": "b"}}})
    assert [t.step_id for t in compile_plan(p, date(2026, 1, 1))] == ["scheduled"]


# Questionnaire reminders and expiry


def questionnaire(remind: list[str], expire: str) -> dict:
    return {"kind": "questionnaire", "id": "q", "instrument": "phq-9", "at": "day 0 20:00", "remind": remind,
            "expire": expire, "template": {"en": {"subject": "s", "body": "{{ link }}"}}}


def test_questionnaire_reminders_are_elapsed_time_and_whole_day_expiry_keeps_the_clock():
    p = pathway(questionnaire(["36h"], "3d"), timezone="Europe/London")
    opened = datetime(2026, 3, 28, 20, 0, tzinfo=LONDON)  # GMT; the clocks go forward that night
    reminders, expires = questionnaire_window(p, p.steps[0], opened, "Europe/London")
    assert reminders == [utc(2026, 3, 30, 8)]  # 36 hours later: 09:00 BST
    assert expires == utc(2026, 3, 31, 19)  # three calendar days later: 20:00 BST


def test_questionnaire_reminders_wait_for_the_send_window_but_expiry_does_not():
    p = pathway(questionnaire(["2h", "90h"], "72h"), timezone="Asia/Shanghai", send_window="09:00-20:00")
    opened = datetime(2026, 5, 1, 19, 30, tzinfo=SHANGHAI)
    reminders, expires = questionnaire_window(p, p.steps[0], opened, "Asia/Shanghai")
    assert reminders == [datetime(2026, 5, 2, 9, 0, tzinfo=SHANGHAI)]  # 21:30 waits; 90h is after expiry
    assert expires == datetime(2026, 5, 4, 19, 30, tzinfo=SHANGHAI)


# Before the anchor


def test_negative_days_fall_before_the_anchor_in_the_patients_zone():
    # Bowel preparation the evening before surgery, a reminder a week before.
    p = pathway(message("prep", "day -1 18:00"), message("week-before", "day -7 09:00"),
                message("surgery-day", "day 0 07:00"), timezone="Asia/Shanghai")
    plan = compile_plan(p, date(2026, 5, 10))
    assert [t.step_id for t in plan] == ["week-before", "prep", "surgery-day"]
    assert dues(plan, SHANGHAI) == [datetime(2026, 5, 3, 9, tzinfo=SHANGHAI), datetime(2026, 5, 9, 18, tzinfo=SHANGHAI),
                                    datetime(2026, 5, 10, 7, tzinfo=SHANGHAI)]


def test_a_negative_day_with_an_offset_counts_from_the_anchor_instant():
    plan = compile_plan(pathway(message("call-ahead", "day -1 +2h")), datetime(2026, 5, 10, 8, 0, tzinfo=UTC))
    assert dues(plan) == [utc(2026, 5, 9, 10)]


# The workflow receives the pathway as JSON


def test_a_pathway_survives_json_with_its_timings_as_the_author_wrote_them():
    p = pathway(message("m", "day -1 18:00", repeat={"every": "1d12h", "times": 2}), send_window="09:00-24:00")
    data = p.model_dump(mode="json")
    assert (data["steps"][0]["at"], data["send_window"]) == ("day -1 18:00", "09:00-24:00")
    assert Pathway.model_validate_json(p.model_dump_json()) == p



def test_spread_moves_each_enrollment_by_its_own_offset_within_the_window_the_same_every_day():
    daily = pathway(message("daily", "day 1 10:00", spread="30m", repeat={"every": "1d", "times": 3}),
                    timezone="Europe/London")
    cohort = [f"en_{n:04d}" for n in range(1000)]
    offsets = []
    for enrollment in cohort:
        local = dues(compile_plan(daily, date(2026, 3, 27), enrollment_id=enrollment), LONDON)
        offset = datetime.combine(local[0].date(), local[0].time()) - datetime(2026, 3, 28, 10, 0)
        assert timedelta(0) <= offset < timedelta(minutes=30)
        # The same local minute each day, across the spring-forward night of 29 March.
        assert [(t.hour, t.minute, t.second) for t in local] == [(local[0].hour, local[0].minute, local[0].second)] * 3
        offsets.append(offset)
    # Recompiled (a replay) the same; a cohort of 1000 spread over all 30 minutes, none of them crowded.
    assert compile_plan(daily, date(2026, 3, 27), enrollment_id="en_0007") == \
        compile_plan(daily, date(2026, 3, 27), enrollment_id="en_0007")
    per_minute = [sum(1 for offset in offsets if offset // timedelta(minutes=1) == minute) for minute in range(30)]
    assert min(per_minute) > 0 and max(per_minute) < 3 * len(cohort) / 30


def test_without_an_enrollment_or_a_spread_the_time_is_the_written_one():
    spread = pathway(message("welcome", "day 1 10:00", spread="30m"))
    assert dues(compile_plan(spread, date(2026, 5, 1))) == [utc(2026, 5, 2, 10, 0)]
    plain = pathway(message("welcome", "day 1 10:00"))
    assert dues(compile_plan(plain, date(2026, 5, 1), enrollment_id="en_1")) == [utc(2026, 5, 2, 10, 0)]
