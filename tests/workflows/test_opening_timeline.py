"""The timeline the API answers an enrollment with is the one the workflow opens with."""

from datetime import timedelta

from language.validation import parse_pathway
from services.enrollments import enrollment_run
from services.settings import PROJECT_ROOT
from services.site import load_site
from workflows.opening import opening_timeline
from workflows.pathway import PathwayWorkflow

SITE = load_site(PROJECT_ROOT / "pathways")

# Anchored two hours ago: the first message was due 90 minutes ago (past the grace, so skipped), the
# second is two hours ahead, then daily.
PATHWAY = parse_pathway("""\
id: opening
version: 3
title: Opening
anchor: discharge_date
locales: [en]
steps:
  - kind: message
    id: overdue
    at: 30m
    template: {en: {subject: Late, body: Hello}}
  - kind: message
    id: ahead
    at: 4h
    repeat: {every: 1d, times: 2}
    template: {en: {subject: Soon, body: Hello}}
""", "opening.yaml", SITE.instruments, SITE.teams())


async def test_the_workflow_opens_with_the_compiled_plan_past_due_touchpoints_skipped(time_skipping, stack):
    now = await time_skipping.get_current_time()
    patient = await stack.add_patient()
    enrolled = await stack.enroll(patient, PATHWAY, now - timedelta(hours=2))

    asked = await enrolled.workflow.query(PathwayWorkflow.timeline)
    started = (await enrolled.workflow.describe()).start_time
    compiled = opening_timeline(enrollment_run(enrolled.enrollment, PATHWAY), started=started)

    assert compiled == asked
    assert [(e.step_id, e.status) for e in compiled.entries] == [
        ("overdue", "skipped"), ("ahead", "planned"), ("ahead", "planned")]
    assert (compiled.status, compiled.next_due, compiled.pathway_version) == ("active", compiled.entries[1].due, 3)
