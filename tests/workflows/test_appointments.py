"""Appointment steps on the time-skipping server with the real worker: reminders with the link before the
visit, then a missed visit opens a call task, an attended one does not, and one nobody recorded counts as missed."""

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError

from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site
from store.db import CallTaskRecord
from workflows.contracts import AttendanceReport
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")
SHANGHAI = ZoneInfo("Asia/Shanghai")

PATHWAY = """\
id: video-visit-test
version: 1
title: Video visit test
anchor: delivery_date
locales: [en]
steps:
  - kind: appointment
    id: video-visit
    mode: video
    at: day 2 10:00
    link: "https://video.example-hospital.test/join?ref={enrollment}-{step}-{occurrence}"
    remind: [1d, 1h]
    record_within: 4h
    template:
      en: {subject: "Your video visit", body: "At {{ visit }}: {{ link }}"}
    on_missed: {call: missed-visit-call, tag: missed-visit}
  - kind: call
    id: missed-visit-call
    team: midwives
    script: {en: "The patient missed the video visit: find out why and book another."}
"""


async def _enroll(time_skipping, stack):
    pathway = parse_pathway(PATHWAY, "video-visit.yaml", stack.instruments, SITE.teams())
    patient = await stack.add_patient(timezone="Asia/Shanghai")
    anchor = (await time_skipping.get_current_time()).date() + timedelta(days=1)
    enrolled = await stack.enroll(patient, pathway, anchor, timezone="Asia/Shanghai")
    [visit] = (await enrolled.workflow.query(PathwayWorkflow.timeline)).entries
    return enrolled, visit


async def _skip_to(time_skipping, moment):
    await time_skipping.sleep(moment - await time_skipping.get_current_time())


def _report(outcome: str) -> AttendanceReport:
    return AttendanceReport(step_id="video-visit", occurrence=1, outcome=outcome, recorded_by="st_midwife")


async def _call_tasks(stack, expected: int = 0) -> list[CallTaskRecord]:
    """The worklist's call tasks, waiting a moment for `expected` of them: the activity writes them just after
    the workflow decides."""
    for _ in range(100):
        async with stack.sessions() as session:
            tasks = (await session.scalars(select(CallTaskRecord))).all()
        if len(tasks) >= expected:
            return tasks
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {expected} call task(s), found {len(tasks)}")


async def test_reminders_carry_the_link_and_a_missed_visit_opens_the_call(time_skipping, stack):
    enrolled, visit = await _enroll(time_skipping, stack)
    await _skip_to(time_skipping, visit.due + timedelta(minutes=30))

    outcome = await enrolled.workflow.execute_update(PathwayWorkflow.record_attendance, _report("missed"))

    assert outcome.calls == ["missed-visit-call"] and outcome.tags == ["missed-visit"]
    reminders = [mail for mail in stack.inbox.messages if mail.subject == "Your video visit"]
    link = f"https://video.example-hospital.test/join?ref={enrolled.enrollment.id}-video-visit-1"
    visit_day = visit.due.astimezone(SHANGHAI).date()
    assert len(reminders) == 2 and all(f"At {visit_day} 10:00: {link}" in mail.body for mail in reminders)
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    entries = {entry.step_id: entry for entry in timeline.entries}
    assert entries["video-visit"].reminders == [visit.due - timedelta(days=1), visit.due - timedelta(hours=1)]
    assert (entries["video-visit"].status, entries["missed-visit-call"].status) == ("missed", "open")
    [task] = await _call_tasks(stack, expected=1)
    assert (task.step_id, task.team) == ("missed-visit-call", "midwives")


async def test_an_attended_visit_opens_no_call(time_skipping, stack):
    enrolled, visit = await _enroll(time_skipping, stack)
    await _skip_to(time_skipping, visit.due + timedelta(minutes=30))

    outcome = await enrolled.workflow.execute_update(PathwayWorkflow.record_attendance, _report("attended"))

    assert outcome.calls == [] and outcome.tags == []
    timeline = await enrolled.workflow.result()
    assert [(entry.step_id, entry.status) for entry in timeline.entries] == [("video-visit", "attended")]
    assert timeline.status == "completed" and await _call_tasks(stack) == []


async def test_a_visit_nobody_recorded_counts_as_missed_once_record_within_has_passed(time_skipping, stack):
    enrolled, visit = await _enroll(time_skipping, stack)

    await _skip_to(time_skipping, visit.due + timedelta(hours=4, minutes=5))

    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    entries = {entry.step_id: entry for entry in timeline.entries}
    assert entries["video-visit"].status == "missed"
    assert entries["video-visit"].detail == "no attendance recorded within 4h"
    assert entries["missed-visit-call"].status == "open"


async def test_attendance_before_the_visit_or_twice_is_refused_naming_the_visit(time_skipping, stack):
    enrolled, visit = await _enroll(time_skipping, stack)
    with pytest.raises(WorkflowUpdateFailedError) as early:
        await enrolled.workflow.execute_update(PathwayWorkflow.record_attendance, _report("attended"))
    await _skip_to(time_skipping, visit.due + timedelta(minutes=5))
    await enrolled.workflow.execute_update(PathwayWorkflow.record_attendance, _report("attended"))
    with pytest.raises(WorkflowUpdateFailedError) as twice:
        await enrolled.workflow.execute_update(PathwayWorkflow.record_attendance, _report("missed"))

    assert f"appointment video-visit #1 is at {visit.due:%Y-%m-%d %H:%M} UTC" in str(early.value.cause)
    assert "appointment video-visit #1 is already attended" in str(twice.value.cause)
