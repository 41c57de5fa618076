"""An enrollment's timeline as its workflow opens it: the plan compiled from the pathway snapshot,
with what was already past due at enrollment skipped.

Pure, so the workflow builds its first timeline with it and the API answers an enrollment with the
same timeline without asking the workflow (which would wait behind any worker backlog).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from language.plan import compile_plan
from workflows.contracts import EnrollmentRun, Timeline, TimelineEntry

# Enrolling takes a moment after the anchor is chosen: a touchpoint due at "anchor + 0s" still goes.
ENROLLMENT_GRACE = timedelta(minutes=15)


def planned_entries(run: EnrollmentRun) -> list[TimelineEntry]:
    return [TimelineEntry(step_id=t.step_id, occurrence=t.occurrence, kind=t.kind, due=t.due)
            for t in compile_plan(run.pathway, run.anchor, run.timezone, run.enrollment_id)]


def skip_due_before_enrollment(entries: list[TimelineEntry], started: datetime) -> None:
    """A patient enrolled on day 10 must not receive days 1-9 in one burst.

    Only touchpoints already past due when the run starts are skipped; one delayed later (a worker
    outage) is still sent late, because a late reminder beats a lost one.
    """
    for entry in entries:
        if entry.due < started - ENROLLMENT_GRACE:
            entry.status, entry.at = "skipped", started
            entry.detail = "due before the enrollment was made"


def opening_timeline(run: EnrollmentRun, started: datetime) -> Timeline:
    """What the workflow's timeline query answers before its first touchpoint is due."""
    entries = planned_entries(run)
    skip_due_before_enrollment(entries, started)
    planned = [entry.due for entry in entries if entry.status == "planned"]
    return Timeline(enrollment_id=run.enrollment_id, status="active", next_due=min(planned, default=None),
                    entries=entries, pathway_version=run.pathway.version)
