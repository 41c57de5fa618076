"""Birthday and holiday steps (`at: birthday 10:00`, `at: holiday cn/spring-festival 10:00`): a mixin of
PathwayWorkflow, deterministic like it.

The workflow never holds a date of birth: at the start of a run an activity reads it, with the site's
holiday calendars, and answers only the days within the enrollment's span on which each occasion falls
(a birthday message is sent on the birthday anyway, so its day is in the history whatever we do; the
year, and so the age, is not). The span is the anchor's day to the last planned touchpoint's.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from language.plan import occasion_span, occasion_touchpoints
    from workflows import effects, retries
    from workflows.contracts import (
        RESOLVE_OCCASIONS,
        EnrollmentRun,
        OccasionDates,
        OccasionQuery,
        TimelineEntry,
    )

class OccasionSteps:
    _run: EnrollmentRun
    _entries: list[TimelineEntry]

    async def _plan_occasions(self) -> None:
        """Add the touchpoints of birthday and holiday steps to the plan, in due order."""
        run = self._run
        occasions = sorted({step.at.occasion for step in run.pathway.steps if step.at and step.at.occasion})
        if not occasions:
            return
        first, last = occasion_span(run.pathway, run.anchor, run.timezone)
        found = await workflow.execute_activity(
            RESOLVE_OCCASIONS, OccasionQuery(enrollment_id=run.enrollment_id, occasions=occasions, first=first,
                                             last=last),
            result_type=OccasionDates, start_to_close_timeout=retries.BOOKKEEPING_TIMEOUT,
            retry_policy=retries.BOOKKEEPING_RETRY)
        for gap in found.gaps:  # the site's calendar needs its next years; the pathway goes on without them
            await effects.alert_operations(run, "a holiday calendar ends before an enrollment does", gap)
        added = [TimelineEntry(step_id=t.step_id, occurrence=t.occurrence, kind=t.kind, due=t.due)
                 for t in occasion_touchpoints(run.pathway, found.dates, run.timezone)]
        self._entries[:] = sorted([*self._entries, *added], key=lambda entry: entry.due)
