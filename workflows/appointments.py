"""Appointment steps: reminders before the visit with the hospital's link, then attendance, recorded by staff or
the video service, or counted as missed when nobody recorded it in time (fail safe: a missed visit's follow-up
call is cheaper than a patient nobody noticed). A mixin of PathwayWorkflow, deterministic like it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from language.plan import appointment_reminders
    from language.rules import Decision
    from language.timing import format_duration
    from workflows.agenda import Agenda, AgendaItem, first_item
    from workflows.contracts import (
        AttendanceReport,
        EnrollmentRun,
        RuleOutcome,
        TimelineEntry,
    )
    from workflows.payloads import appointment_notice

@dataclass(frozen=True, eq=False)
class AppointmentItem(AgendaItem):
    """What PathwayWorkflow hands to `_perform_appointment`."""


@dataclass(frozen=True, eq=False)
class AppointmentReminder(AppointmentItem):
    pass


@dataclass(frozen=True, eq=False)
class AppointmentDue(AppointmentItem):
    """The visit's time: from now attendance may be recorded."""


@dataclass(frozen=True, eq=False)
class AttendanceDeadline(AppointmentItem):
    """Attendance not recorded by now counts as missed."""


APPOINTMENT_ITEMS: dict[str, type[AgendaItem]] = {
    "appointment_reminder": AppointmentReminder, "appointment_due": AppointmentDue,
    "attendance_deadline": AttendanceDeadline}


class AppointmentSteps:
    _run: EnrollmentRun
    _entries: list[TimelineEntry]
    _agenda: Agenda

    def _begin(self, entry: TimelineEntry) -> None:
        """Put a planned touchpoint on the agenda: a visit's reminders and its time, or what its kind starts with."""
        if entry.kind != "appointment":
            self._agenda.add(first_item(entry))
            return
        step = self.rules_pathway(entry.key).step(entry.step_id)
        now = workflow.now()
        entry.reminders = [due for due in appointment_reminders(self._run.pathway, step, entry.due, self._run.timezone)
                           if due >= now]  # one already past would only repeat what the patient was told at booking
        for due in entry.reminders:
            self._agenda.add(AppointmentReminder(due, entry))
        self._agenda.add(AppointmentDue(entry.due, entry))

    async def _perform_appointment(self, item: AppointmentItem) -> None:
        entry = item.entry
        step = self.rules_pathway(entry.key).step(entry.step_id)
        match item:
            case AppointmentReminder() if entry.status == "planned":
                entry.reminders_sent += 1
                await self._send(entry, purpose=f"reminder-{entry.reminders_sent}", due=item.due, template="template",
                                 appointment=appointment_notice(self._run, step, entry))
            case AppointmentDue() if entry.status == "planned":
                entry.status, entry.at, entry.closes = "open", workflow.now(), entry.due + step.record_within
                self._agenda.add(AttendanceDeadline(entry.closes, entry))
            case AttendanceDeadline() if entry.status == "open":
                self._attend(entry, "missed", f"no attendance recorded within {format_duration(step.record_within)}")

    @workflow.update
    def record_attendance(self, report: AttendanceReport) -> RuleOutcome:
        """Whether the patient came; a missed visit does what the step's on_missed says."""
        entry = self._entry(report.step_id, report.occurrence, "appointment")
        self._attend(entry, report.outcome, f"{report.outcome}, recorded by {report.recorded_by}")
        return entry.outcome

    @record_attendance.validator
    def _accept_attendance_of_held_visits(self, report: AttendanceReport) -> None:
        visit = f"appointment {report.step_id} #{report.occurrence}"
        entry = self._entry(report.step_id, report.occurrence, "appointment")
        if entry is None:
            raise ValueError(f"no {visit} in this enrollment")
        if entry.status == "planned":
            raise ValueError(f"{visit} is at {entry.due.astimezone(UTC):%Y-%m-%d %H:%M} UTC; record attendance from then")
        if entry.status != "open":
            raise ValueError(f"{visit} is already {entry.status}")

    def _attend(self, entry: TimelineEntry, outcome: str, detail: str) -> None:
        step = self.rules_pathway(entry.key).step(entry.step_id)
        entry.detail, entry.outcome = detail, RuleOutcome()
        self._reach(entry, outcome, at=workflow.now())
        if outcome == "missed" and step.on_missed is not None:
            self._apply(Decision.always(step.on_missed, detail), entry, entry.outcome)
