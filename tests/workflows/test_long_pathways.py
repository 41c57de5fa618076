"""A year-long pathway on the time-skipping server: its workflow continues as new before its history
grows long, and the enrollment carries on across runs as if it were one."""

from datetime import timedelta
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from services.responses import submit_response
from services.settings import PROJECT_ROOT
from services.site import load_site
from workflows.contracts import workflow_id_for

SITE = load_site(PROJECT_ROOT / "pathways")
HYPERTENSION = SITE.load_pathway(Path(__file__).with_name("hypertension-365d.yaml"))


async def _runs(client, workflow_id: str, first_run_id: str) -> list:
    """The history of every run of a workflow, first to last, following each continue-as-new."""
    histories, run_id = [], first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        continued = last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id if continued else None
    return histories


async def test_a_year_of_weekly_readings_continues_as_new_and_keeps_its_timeline(time_skipping, stack):
    patient = await stack.add_patient(timezone="Europe/London")
    anchor = (await time_skipping.get_current_time()).date() + timedelta(days=1)
    enrolled = await stack.enroll(patient, HYPERTENSION, anchor)
    workflow_id = workflow_id_for(enrolled.enrollment.id)

    # Week 40's reading is raised, answered an hour after it opened: by then the first run has
    # handed over, so the answer reaches a later run through the enrollment's workflow id.
    await time_skipping.sleep(timedelta(days=1 + 7 * 40, hours=10))
    accepted = await submit_response(stack.sessions, stack.client, stack.instruments,
                                     enrollment_id=enrolled.enrollment.id, step_id="weekly-reading", occurrence=40,
                                     answers={"systolic": 152, "diastolic": 94}, source="patient")
    timeline = await enrolled.workflow.result()

    outcome = accepted.outcome
    assert outcome.tags == ["raised-bp"] and outcome.escalations == ["Home reading 140/90 mmHg or more"]
    readings = [e for e in timeline.entries if e.step_id == "weekly-reading"]
    letters = [e for e in timeline.entries if e.step_id == "monthly-letter"]
    assert timeline.status == "completed" and len(readings) == 52 and len(letters) == 12
    assert [e.occurrence for e in readings if e.status == "answered"] == [40]
    assert all(e.status == "expired" for e in readings if e.occurrence != 40)
    assert all(e.status == "sent" for e in letters)
    assert timeline.tags == ["missed-reading", "raised-bp"]
    assert [e.kind for e in timeline.events].count("escalation") == 1
    runs = await _runs(stack.client, workflow_id, enrolled.workflow.first_execution_run_id)
    assert len(runs) >= 2 and all(len(history.events) < 2000 for history in runs), [len(h.events) for h in runs]
