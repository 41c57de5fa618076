"""PathwayWorkflow on the time-skipping server, with the real worker, SQLite file and SMTP server."""

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from language.plan import spread_offset
from language.validation import parse_pathway
from services.settings import PROJECT_ROOT
from services.site import load_site
from store.db import Enrollment, TouchpointRecord
from workflows.contracts import AttendanceReport, CancelRequest
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")

SHIPPED = Path(__file__).resolve().parents[2] / "pathways"


def _pathway(steps: str, extra: str = ""):
    return parse_pathway(
        "id: test-pathway\nversion: 1\ntitle: Test\nanchor: surgery_date\nlocales: [en]\n" + extra + "steps:\n" + steps,
        "test.yaml", SITE.instruments, SITE.teams(),
    )


def _patient_mail(stack) -> list:
    return [mail for mail in stack.inbox.messages if mail.recipients == ("patient@example.test",)]


async def _tomorrow(time_skipping) -> date:
    return (await time_skipping.get_current_time()).date() + timedelta(days=1)


async def test_thirty_day_pathway_completes_with_every_message_sent_once(time_skipping, stack):
    pathway = SITE.load_pathway(SHIPPED / "post-surgery-recovery.yaml")
    patient = await stack.add_patient(given_name="Mei", locale="zh-CN", timezone="Asia/Shanghai")
    enrolled = await stack.enroll(patient, pathway, await _tomorrow(time_skipping))
    [visit] = [e for e in (await enrolled.workflow.query(PathwayWorkflow.timeline)).entries if e.kind == "appointment"]
    await time_skipping.sleep(visit.due + timedelta(minutes=20) - await time_skipping.get_current_time())
    await enrolled.workflow.execute_update(PathwayWorkflow.record_attendance, AttendanceReport(
        step_id=visit.step_id, occurrence=1, outcome="attended", recorded_by="st_surgeon"))

    timeline = await enrolled.workflow.result()

    assert timeline.status == "completed"
    messages = [e for e in timeline.entries if e.kind == "message"]
    questionnaires = [e for e in timeline.entries if e.kind == "questionnaire"]
    assert [e.status for e in messages] == ["sent"] * 11
    # Nobody answers in this test: every questionnaire expires, and the weekly ones say so with a tag.
    assert [e.status for e in questionnaires] == ["expired"] * 6 and timeline.tags == ["no-response"]
    # The pathway reaches a zh-CN patient by WeChat first; with no gateway here, the stack records what it carried.
    carried = stack.carried
    # 11 messages, 6 invitations, reminders for the weekly checks (2) and satisfaction (1), and the video visit's 2.
    assert len(carried) == 11 + 6 + 3 + 2 and sum(".video-follow-up." in message_id for message_id in carried) == 2
    # What each WeChat message showed (its fields), in the order sent.
    shown = list(carried.values())
    assert shown[0].startswith("Mei，您好 / 您的出院须知")
    assert sum("术后第 3 天自我检查" in text for text in shown) == 1
    assert sum("术后自我检查（约 1 分钟）" in text for text in shown) == 3 + 2 + 2
    local = ZoneInfo("Asia/Shanghai")
    assert (messages[-1].due.astimezone(local).date() - messages[0].due.astimezone(local).date()).days == 30
    async with stack.sessions() as session:
        enrollment = await session.get(Enrollment, enrolled.enrollment.id)
        records = (await session.scalars(select(TouchpointRecord))).all()
    assert enrollment.status == "completed" and enrollment.ended_at is not None
    assert len(records) == 22 and {r.status for r in records} == {"sent"} and {r.attempts for r in records} == {1}
    assert {r.channel for r in records} == {"wechat"}


async def test_cancel_stops_every_touchpoint_left(time_skipping, stack):
    pathway = _pathway(
        "  - kind: message\n    id: daily\n    at: day 1 10:00\n    repeat: {every: 1d, times: 10}\n"
        "    template: {en: {subject: 'Day {{ step.occurrence }}', body: 'Hello'}}\n"
    )
    patient = await stack.add_patient(timezone="UTC")
    anchor = await _tomorrow(time_skipping)
    enrolled = await stack.enroll(patient, pathway, anchor)

    # Until day 3 12:00: days 1, 2 and 3 have been sent.
    now = await time_skipping.get_current_time()
    await time_skipping.sleep(datetime.combine(anchor + timedelta(days=3), time(12), tzinfo=ZoneInfo("UTC")) - now)
    after_cancel = await enrolled.workflow.execute_update(PathwayWorkflow.cancel, CancelRequest(reason="readmitted"))
    timeline = await enrolled.workflow.result()

    assert [e.status for e in after_cancel.entries] == ["sent"] * 3 + ["cancelled"] * 7
    assert timeline.status == "cancelled" and timeline.cancel_reason == "readmitted"
    assert [e.status for e in timeline.entries] == ["sent"] * 3 + ["cancelled"] * 7
    assert [mail.subject for mail in _patient_mail(stack)] == ["Day 1", "Day 2", "Day 3"]
    async with stack.sessions() as session:
        enrollment = await session.get(Enrollment, enrolled.enrollment.id)
    assert (enrollment.status, enrollment.status_reason) == ("cancelled", "readmitted")


async def test_send_window_delays_a_night_touchpoint_to_the_window_opening_in_the_patients_zone(time_skipping, stack):
    pathway = _pathway(
        "  - kind: message\n    id: night\n    at: day 1 03:00\n"
        "    template: {en: {subject: 'Night', body: 'Hello'}}\n",
        extra="send_window: '09:00-20:00'\n",
    )
    zone = ZoneInfo("America/New_York")
    patient = await stack.add_patient(timezone="America/New_York")
    anchor = await _tomorrow(time_skipping)
    enrolled = await stack.enroll(patient, pathway, anchor)

    timeline = await enrolled.workflow.result()

    [entry] = timeline.entries
    assert entry.due.astimezone(zone) == datetime.combine(anchor + timedelta(days=1), time(9), tzinfo=zone)
    # Delivered when the window opened, not at 03:00: the workflow's clock at delivery.
    assert timedelta(0) <= entry.at - entry.due < timedelta(minutes=1)
    assert [mail.subject for mail in _patient_mail(stack)] == ["Night"]


async def test_touchpoints_due_before_the_enrollment_are_skipped_not_sent_in_a_burst(time_skipping, stack):
    pathway = _pathway(
        "  - kind: message\n    id: daily\n    at: day 1 10:00\n    repeat: {every: 1d, times: 5}\n"
        "    template: {en: {subject: 'Day {{ step.occurrence }}', body: 'Hello'}}\n"
    )
    patient = await stack.add_patient(timezone="UTC")
    today = (await time_skipping.get_current_time()).date()
    enrolled = await stack.enroll(patient, pathway, today - timedelta(days=3))

    timeline = await enrolled.workflow.result()

    # Day 3 falls due today at 10:00, before or after "now" depending on when the test runs.
    statuses = [e.status for e in timeline.entries]
    assert statuses[:2] == ["skipped", "skipped"] and statuses[3:] == ["sent", "sent"]
    subjects = [mail.subject for mail in _patient_mail(stack)]
    assert subjects[-2:] == ["Day 4", "Day 5"] and {"Day 1", "Day 2"}.isdisjoint(subjects)


async def test_a_spread_step_is_sent_at_the_enrollments_own_offset_every_day(time_skipping, stack):
    pathway = _pathway(
        "  - kind: message\n    id: daily\n    at: day 1 10:00\n    spread: 30m\n    repeat: {every: 1d, times: 2}\n"
        "    template: {en: {subject: 'Day {{ step.occurrence }}', body: 'Hello'}}\n"
    )
    anchor = await _tomorrow(time_skipping)
    cohort = [await stack.enroll(await stack.add_patient(timezone="UTC"), pathway, anchor) for _ in range(2)]
    timelines = [(enrolled.enrollment.id, await enrolled.workflow.result()) for enrolled in cohort]

    written = datetime.combine(anchor + timedelta(days=1), time(10, 0), tzinfo=ZoneInfo("UTC"))
    for enrollment_id, timeline in timelines:
        offset = spread_offset(enrollment_id, timedelta(minutes=30))
        assert [(e.status, e.due) for e in timeline.entries] == [
            ("sent", written + offset), ("sent", written + timedelta(days=1) + offset)]
        # Sent when due, not at the written 10:00.
        assert all(e.at >= e.due for e in timeline.entries)
