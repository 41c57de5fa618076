"""The timing vocabulary: durations, `at` expressions and send windows, as authors write them."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from language.timing import (
    MAX_DAYS,
    SendWindow,
    Timing,
    format_duration,
    parse_duration,
    parse_send_window,
    parse_timing,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("0s", timedelta(0)),
        ("90m", timedelta(minutes=90)),
        # compound, in the order w d h m s, with or without spaces, any case
        ("1d12h", timedelta(days=1, hours=12)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        (" 2 h ", timedelta(hours=2)),
        ("2H", timedelta(hours=2)),
        ("1D", timedelta(days=1)),
        # ISO 8601
        ("PT30S", timedelta(seconds=30)),
        ("PT1M", timedelta(minutes=1)),
        ("P1D", timedelta(days=1)),
        ("P1W", timedelta(weeks=1)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("pt30s", timedelta(seconds=30)),
        (f"{MAX_DAYS}d", timedelta(days=MAX_DAYS)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


def test_a_timedelta_passes_through():
    assert parse_duration(timedelta(hours=3)) == timedelta(hours=3)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is not a duration"),
        ("soon", "is not a duration"),
        ("1 day", "is not a duration"),
        ("1.5h", "is not a duration"),
        ("-1d", "is not a duration"),
        ("2h1d", "is not a duration"),  # units out of order
        ("1x", "is not a duration"),
        ("P", "is not a duration"),
        ("PT", "is not a duration"),
        ("P1D2H", "is not a duration"),  # ISO needs the T before hours
        ("P-1D", "is not a duration"),
        (30, "expected a duration"),  # YAML `every: 30`
        (1.5, "expected a duration"),
        (None, "expected a duration"),
        # A month is not a duration: `1M` could mean a minute, and P1M/P1Y vary in length.
        ("1M", "ambiguous"),
        ("1d1M", "ambiguous"),
        ("P1M", "months or years"),
        ("P1Y", "months or years"),
        ("P1Y2M", "months or years"),
        # Beyond the calendar: an error, not OverflowError.
        (f"{MAX_DAYS + 1}d", "longer than"),
        ("99999999999d", "longer than"),
        ("9" * 5000 + "s", "longer than"),
        ("P40000D", "longer than"),
    ],
)
def test_bad_durations_are_value_errors_that_say_why(value, message):
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize("text", ["30s", "2h", "1d12h", "1w", "1w2d3h4m5s"])
def test_format_duration_is_the_inverse_of_parse(text):
    assert format_duration(parse_duration(text)) == text


def test_format_duration_of_zero():
    assert format_duration(timedelta(0)) == "0s"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("day 3 09:00", Timing(3, time(9, 0), timedelta())),
        ("day 0 00:00", Timing(0, time(0, 0), timedelta())),
        ("day 1 9:05", Timing(1, time(9, 5), timedelta())),
        ("Day 2 23:59", Timing(2, time(23, 59), timedelta())),
        ("  day 14 10:00  ", Timing(14, time(10, 0), timedelta())),
        ("day 0 +2h", Timing(0, None, timedelta(hours=2))),
        ("day 1 + 30m", Timing(1, None, timedelta(minutes=30))),
        ("day 1 +1d12h", Timing(1, None, timedelta(days=1, hours=12))),
        ("day 5", Timing(5, None, timedelta())),
        ("30s", Timing(0, None, timedelta(seconds=30))),
        ("PT30S", Timing(0, None, timedelta(seconds=30))),
        (f"day {MAX_DAYS} 10:00", Timing(MAX_DAYS, time(10, 0), timedelta())),
        ("day -1 18:00", Timing(-1, time(18, 0), timedelta())),  # the evening before the anchor
        ("day -7 09:00", Timing(-7, time(9, 0), timedelta())),
        ("day -1 +2h", Timing(-1, None, timedelta(hours=2))),
        (f"day -{MAX_DAYS} 10:00", Timing(-MAX_DAYS, time(10, 0), timedelta())),
    ],
)
def test_at_expressions(text, expected):
    assert parse_timing(text) == expected


def test_a_timing_keeps_the_authors_words_but_two_spellings_of_one_time_are_equal():
    assert str(parse_timing("  Day 2 9:05 ")) == "Day 2 9:05"
    assert parse_timing("30s") == parse_timing("PT30S")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("day 1 25:00", r"'25:00' is not a time of day"),
        ("day 1 24:00", r"'24:00' is not a time of day"),
        ("day 1 09:60", r"'09:60' is not a time of day"),
        ("day three 09:00", "is not a time; write 'day N HH:MM'"),
        ("day - 1 09:00", "is not a time"),
        ("day +1 09:00", "is not a time"),
        (f"day -{MAX_DAYS + 1} 10:00", f"more than {MAX_DAYS} days before the anchor"),
        ("day 1 9am", "is not a time"),
        ("day 1 09:00:30", "is not a time"),
        ("09:00", "is not a time"),
        ("tomorrow", "is not a time"),
        ("", "is not a time"),
        ("day 1 +soon", "is not a duration"),
        ("day 1 +1M", "ambiguous"),
        (f"day {MAX_DAYS + 1} 10:00", "more than"),
        ("day 99999999999999 10:00", "more than"),
        ("99999999999d", "longer than"),
    ],
)
def test_bad_at_expressions(text, message):
    with pytest.raises(ValueError, match=message):
        parse_timing(text)


@pytest.mark.parametrize(
    ("text", "opens", "closes"),
    [
        ("09:00-20:00", time(9), time(20)),
        ("9:00-17:30", time(9), time(17, 30)),
        ("08:30 - 21:00", time(8, 30), time(21)),
        ("00:00-24:00", time(0), time(23, 59, 59)),
        ("09:00\u201320:00", time(9), time(20)),  # en dash, as word processors write it
        ("09:00\u201420:00", time(9), time(20)),  # em dash
    ],
)
def test_send_windows(text, opens, closes):
    assert parse_send_window(text) == SendWindow(opens, closes)
    assert str(parse_send_window(text)) == text.strip()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9am-5pm", "is not a send window"),
        ("09:00", "is not a send window"),
        ("09:00-", "is not a send window"),
        ("09:00 to 20:00", "is not a send window"),
        ("09:00-25:00", "outside 00:00-24:00"),
        ("24:00-24:00", "outside 00:00-24:00"),
        ("09:75-20:00", "outside 00:00-24:00"),
        ("09:00-24:30", "outside 00:00-24:00"),
        ("20:00-09:00", "must open before it closes"),
        ("09:00-09:00", "must open before it closes"),
    ],
)
def test_bad_send_windows(text, message):
    with pytest.raises(ValueError, match=message):
        parse_send_window(text)
