"""language/reach.py: the channel order of one message, quiet hours (across midnight and DST), the local day,
and what validation says about `reach`."""

from datetime import UTC, datetime, time

import pytest

from language.loader import DocumentInvalid
from language.model import Reach
from language.reach import (
    QuietHours,
    channel_order,
    local_day,
    parse_quiet_hours,
    quiet_until,
)
from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site

SITE = load_site(PROJECT_ROOT / "pathways")
REACH = Reach(channels={"zh-CN": ["wechat", "sms"], "en": ["email"]}, call="unreached-call")


def test_the_patient_first_then_the_step_or_the_pathway_for_their_language_then_email():
    assert channel_order([], None, REACH, "zh-CN") == ["wechat", "sms"]
    assert channel_order(["sms"], None, REACH, "zh-CN") == ["sms", "wechat"]
    assert channel_order(["push"], "email", REACH, "zh-CN") == ["push", "email"]
    assert channel_order([], None, REACH, "fr") == ["email"]
    assert channel_order([], None, None, "zh-CN") == ["email"]
    # A snapshot from before `reach` names its channel on every step: the same single channel as ever.
    assert channel_order([], "email", None, "zh-CN") == ["email"]


def test_quiet_hours_across_midnight_end_the_next_morning_in_the_patients_zone():
    quiet = parse_quiet_hours("22:00-07:30")
    shanghai = "Asia/Shanghai"
    assert quiet_until(datetime(2026, 12, 1, 15, 0, tzinfo=UTC), quiet, shanghai) == datetime(
        2026, 12, 1, 23, 30, tzinfo=UTC)  # 23:00 local: until 07:30 the next day
    assert quiet_until(datetime(2026, 12, 1, 20, 0, tzinfo=UTC), quiet, shanghai) == datetime(
        2026, 12, 1, 23, 30, tzinfo=UTC)  # 04:00 local: until 07:30 that day
    assert quiet_until(datetime(2026, 12, 1, 2, 0, tzinfo=UTC), quiet, shanghai) is None  # 10:00 local
    assert quiet_until(datetime(2026, 12, 1, 23, 30, tzinfo=UTC), quiet, shanghai) is None  # 07:30: over


def test_quiet_hours_within_a_day_and_over_a_dst_change():
    lunch = parse_quiet_hours("12:00-14:00")
    assert quiet_until(datetime(2026, 7, 1, 12, 30, tzinfo=UTC), lunch, "UTC") == datetime(2026, 7, 1, 14, 0, tzinfo=UTC)
    assert quiet_until(datetime(2026, 7, 1, 14, 0, tzinfo=UTC), lunch, "UTC") is None
    # London springs forward at 01:00 on 29 March 2026: quiet until 01:30, a time that never was, ends at 02:30 BST.
    night = QuietHours(time(0, 0), time(1, 30))
    assert quiet_until(datetime(2026, 3, 29, 0, 30, tzinfo=UTC), night, "Europe/London") == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(("text", "problem"), [("22:00", "is not quiet hours"), ("24:00-07:00", "outside 00:00-23:59"),
                                               ("07:00-07:00", "start and end at the same time")])
def test_unreadable_quiet_hours_say_what_is_wrong(text: str, problem: str):
    with pytest.raises(ValueError, match=problem):
        parse_quiet_hours(text)


def test_the_local_day_is_the_patients_calendar_day():
    starts, ends = local_day(datetime(2026, 12, 1, 17, 0, tzinfo=UTC), "Asia/Shanghai")  # 01:00 on 2 December
    assert (starts, ends) == (datetime(2026, 12, 1, 16, 0, tzinfo=UTC), datetime(2026, 12, 2, 16, 0, tzinfo=UTC))


def test_validation_names_a_reach_call_that_is_no_call_step_a_foreign_language_and_a_missing_form():
    text = """
id: reach-check
version: 1
title: t
anchor: a
locales: [zh-CN]
reach: {channels: {zh-CN: [wechat, sms], fr: [email]}, call: welcome}
steps:
  - kind: message
    id: welcome
    at: day 1 10:00
    template: {zh-CN: {subject: s, body: b, sms: {text: "短信"}}}
"""
    with pytest.raises(DocumentInvalid) as invalid:
        parse_pathway(text, "reach-check.yaml", SITE.instruments, SITE.teams())
    messages = [problem.message for problem in invalid.value.problems]
    assert "'welcome' is not a call step of this pathway" in messages
    assert "'fr' is not one of the pathway's locales (zh-CN)" in messages
    assert any(message.startswith("channel wechat needs a wechat form") for message in messages)
