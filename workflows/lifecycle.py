"""Staff control of a running enrollment: pause and resume it, move its anchor, stop it for good.

A mixin of PathwayWorkflow, whose state it shares (`_run`, `_entries`, `_agenda`, `_events`, ...).
These handlers change what the workflow does next only in runs that receive them, and no run before
them could, so committed histories replay unchanged (tests/replay) without a patch.

- **Pause** (a readmission): nothing reaches the patient. A touchpoint falling due is skipped or held
  for the resume, as its step's `while_paused` says; escalations and questionnaire expiry go on, for
  someone must still look at a patient whose answers alarmed a rule (fail safe).
- **Resume**: what was held goes at once (in the send window), the latest of each step only: after
  ten days on a ward one daily check is what a clinician wants, not ten.
- **Move the anchor** (an operation rescheduled): touchpoints not yet sent or opened are recompiled
  from the new anchor; what happened stays, and what the new plan puts in the past is skipped.
- **Stop for good** (the patient died): nothing more is sent on this enrollment, not even what a rule
  decided, and deliveries still retrying stop; escalations already decided still reach staff.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from language.plan import compile_plan, send_window_at
    from language.timing import format_duration
    from workflows.agenda import (
        Agenda,
        AgendaItem,
        Expire,
        Remind,
        StartEscalation,
    )
    from workflows.carried import restored
    from workflows.contracts import (
        AnchorMove,
        CarriedState,
        EnrollmentRun,
        Pause,
        PauseRequest,
        ResumeRequest,
        StopForGood,
        Timeline,
        TimelineEntry,
        TimelineEvent,
    )
    from workflows.deliveries import Deliveries

    # The same grace as at enrollment holds for an anchor moved to now.
    from workflows.opening import ENROLLMENT_GRACE


class Lifecycle:
    """The lifecycle updates of PathwayWorkflow, and what the agenda loop asks them."""

    _run: EnrollmentRun
    _entries: list[TimelineEntry]
    _agenda: Agenda
    _events: list[TimelineEvent]
    _in_flight: Deliveries
    _performing: AgendaItem | None
    _finished: bool

    def _restore_lifecycle(self, carried: CarriedState) -> None:
        self._pause: Pause | None = carried.pause
        self._held: list[AgendaItem] = [restored(item, self._entries) for item in carried.held]

    @workflow.update
    def pause(self, request: PauseRequest) -> Timeline:
        """Hold every touchpoint that falls due from now until `resume`."""
        self._pause = Pause(since=workflow.now(), reason=request.reason, actor=request.actor)
        self._events.append(TimelineEvent(at=workflow.now(), kind="pause",
                                          detail=f"paused by {request.actor}: {request.reason}"))
        return self.timeline()

    @pause.validator
    def _pause_only_while_running(self, request: PauseRequest) -> None:
        if not request.reason.strip():
            raise ValueError("a pause needs a reason")
        self._refuse_when_over()
        if self._pause is not None:
            raise ValueError(f"the enrollment is already paused, since "
                             f"{self._pause.since:%Y-%m-%d %H:%M} UTC by {self._pause.actor}")

    @workflow.update
    def resume(self, request: ResumeRequest) -> Timeline:
        """Go on with the agenda; what was held for the resume goes now."""
        now, held = workflow.now(), self._held
        self._pause, self._held = None, []
        window = self._run.pathway.send_window
        opens, next_opening = send_window_at(now, window, self._run.timezone) if window else (now, now)
        goes_at = now if opens else next_opening
        latest = {(item.entry.step_id, type(item)): item for item in held}
        for item in held:
            if not any(entry is item.entry for entry in self._entries):
                continue  # a migration during the pause replaced its touchpoint
            if latest[(item.entry.step_id, type(item))] is item:
                if item.entry.status == "planned":  # rescheduled, so that it counts, and reads, from when it goes
                    item.entry.due, item.entry.detail = goes_at, "held during the pause"
                self._agenda.add(dataclasses.replace(item, due=goes_at))
            elif item.entry.status == "planned":
                self._skip(item.entry, now, "held during the pause; a later occurrence went instead")
        self._events.append(TimelineEvent(at=now, kind="resume", detail=f"resumed by {request.actor}"))
        return self.timeline()

    @resume.validator
    def _resume_only_a_pause(self, request: ResumeRequest) -> None:
        self._refuse_when_over()
        if self._pause is None:
            raise ValueError("the enrollment is not paused")

    @workflow.update
    def move_anchor(self, request: AnchorMove) -> Timeline:
        """Recompute every touchpoint not yet begun from the new anchor, from now on."""
        now, moved_by = workflow.now(), request.anchor - self._run.anchor
        plan = {t.key: t for t in compile_plan(self._run.pathway, request.anchor, self._run.timezone,
                                               self._run.enrollment_id)}
        performing = self._performing.entry if self._performing else None
        known = {entry.key for entry in self._entries}
        self._entries.extend(TimelineEntry(step_id=t.step_id, occurrence=t.occurrence, kind=t.kind, due=t.due)
                             for key, t in plan.items() if key not in known)
        # Not begun: never sent, opened or attempted, and not on its way now. Sent stays sent.
        moving = [entry for entry in self._entries if entry.status in ("planned", "skipped") and entry.attempts == 0
                  and entry.key in plan and entry.key not in self._in_flight and entry is not performing]
        self._agenda.keep_only(lambda item: all(item.entry is not entry for entry in moving))
        self._held = [item for item in self._held if all(item.entry is not entry for entry in moving)]
        for entry in moving:
            entry.due, entry.status, entry.at, entry.detail = plan[entry.key].due, "planned", None, None
            if entry.due < now - ENROLLMENT_GRACE:
                self._skip(entry, now, "due before the anchor it was moved to")
            else:
                self._begin(entry)  # a visit's reminders too
        self._run = self._run.model_copy(update={"anchor": request.anchor})
        direction = "later" if moved_by.total_seconds() > 0 else "earlier"
        self._events.append(TimelineEvent(at=now, kind="anchor", detail=f"anchor moved {format_duration(abs(moved_by))} "
                                          f"{direction} by {request.actor}: {request.reason}"))
        return self.timeline()

    @move_anchor.validator
    def _move_a_running_enrollment_elsewhere(self, request: AnchorMove) -> None:
        if not request.reason.strip():
            raise ValueError("moving the anchor needs a reason")
        self._refuse_when_over()
        if request.anchor == self._run.anchor:
            raise ValueError("the enrollment already hangs on that anchor")

    @workflow.update
    def stop_for_good(self, request: StopForGood) -> Timeline:
        """Nothing more reaches the patient from this enrollment, whatever state it is in."""
        if self._ended_by() is None:
            self._stop_reason = request.reason
            self._events.append(TimelineEvent(at=workflow.now(), kind="stop",
                                              detail=f"{request.reason} (recorded by {request.actor})"))
        self._agenda.keep_only(lambda item: isinstance(item, StartEscalation))
        self._pause, self._held = None, []
        self._in_flight.cancel_all()
        self._close_remaining()
        return self.timeline()

    @stop_for_good.validator
    def _stop_needs_a_reason(self, request: StopForGood) -> None:
        if not request.reason.strip():
            raise ValueError("stopping an enrollment for good needs a reason")

    def _held_back(self, item: AgendaItem) -> bool:
        """While paused, what falls due and would reach the patient is skipped or held, by its step."""
        if self._pause is None or isinstance(item, (StartEscalation, Expire)):
            return False
        entry = item.entry
        if isinstance(item, Remind) and entry.status != "open":
            return False  # answered or expired meanwhile: nothing would be sent anyway
        if self.rules_pathway(entry.key).step(entry.step_id).while_paused == "send_on_resume":
            self._held.append(item)
        elif entry.status == "planned":  # a skipped reminder leaves its questionnaire open
            self._skip(entry, workflow.now(), "due while the enrollment was paused")
        return True

    def _waiting_for_resume(self) -> bool:
        """Touchpoints held for the resume keep the run going, unless the enrollment ended meanwhile."""
        return bool(self._held) and self._ended_by() is None

    def _refuse_when_over(self) -> None:
        if self._ended_by() is not None:
            raise ValueError(f"the enrollment is {self._status()}")
        if self._finished:
            raise ValueError("the enrollment has already completed")

    @staticmethod
    def _skip(entry: TimelineEntry, at: datetime, why: str) -> None:
        entry.status, entry.at, entry.detail = "skipped", at, why
