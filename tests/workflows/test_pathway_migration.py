"""Migrating a running enrollment on the time-skipping server: the dry run, the change, a repeat, the undo."""

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError

from language.plan import compile_plan
from services.migrations import (
    MigrationRefused,
    apply_migrations,
    plan_migrations,
    roll_back,
)
from services.registry import PathwayRegistry
from services.responses import submit_response
from store.db import AccessAudit, Enrollment
from tests.workflows.migration_versions import VERSION_2, VERSION_3
from workflows.contracts import MigrationRequest, escalation_workflow_id
from workflows.escalation import EscalationWorkflow
from workflows.pathway import PathwayWorkflow

MANAGER = "st_manager"
CALM_BUT_ELEVEN = {"q1": "more_than_half_the_days", "q2": "more_than_half_the_days", "q3": "more_than_half_the_days",
                   "q4": "several_days", "q5": "several_days", "q6": "several_days", "q7": "several_days",
                   "q8": "several_days", "q9": "not_at_all"}  # PHQ-9 total 11: over 10 (version 2), under 12 (3)


async def _audit(session, action: str, enrollment_id: str, target: str) -> None:
    session.add(AccessAudit(actor_kind="staff", actor_id=MANAGER, actor_roles="clinical_manager", action=action,
                            outcome="allowed", enrollment_id=enrollment_id, target=target))


async def _on_version_2_at_day_10(time_skipping, stack):
    registry = PathwayRegistry(stack.sessions, stack.instruments)
    v2 = (await registry.deploy(VERSION_2, "v2.yaml")).deployed.pathway
    v3 = (await registry.deploy(VERSION_3, "v3.yaml")).deployed.pathway
    patient = await stack.add_patient(timezone="UTC")
    anchor = (await time_skipping.get_current_time()).date() + timedelta(days=1)
    enrolled = await stack.enroll(patient, v2, anchor)
    day_0 = datetime.combine(anchor, time(0), tzinfo=UTC)
    await time_skipping.sleep(day_0 + timedelta(days=10, hours=12) - await time_skipping.get_current_time())
    return registry, enrolled, v3, day_0


def _day(day_0: datetime, day: int) -> datetime:
    return day_0 + timedelta(days=day, hours=10)


async def test_an_enrollment_migrated_at_day_10_follows_version_3_keeps_its_open_check_and_sends_nothing_twice(
        time_skipping, stack):
    registry, enrolled, v3, day_0 = await _on_version_2_at_day_10(time_skipping, stack)
    enrollment_id = enrolled.enrollment.id
    now = await time_skipping.get_current_time()

    [report] = await plan_migrations(stack.sessions, stack.client, registry, "recovery-check", 3, now=now)

    plan = report.plan
    assert (plan.from_version, plan.to_version, plan.blocked) == (2, 3, [])
    assert [(t.key, t.due) for t in plan.added] == [("day14-check#1", _day(day_0, 14))]
    assert [(t.key, t.due) for t in plan.removed] == [("day21-message#1", _day(day_0, 21))]
    assert [(m.was_step_id, m.step_id, m.was_due, m.due) for m in plan.moved] == [
        ("week2-note", "two-week-note", _day(day_0, 12), _day(day_0, 12))]
    assert plan.renamed == {"week2-note": "two-week-note"}
    assert [(k.step_id, k.status) for k in plan.kept] == [("mood", "open")]
    assert [(p.name, p.was, p.becomes) for p in plan.parameters_changed] == [("referral_score", 10, 12)]
    assert plan.rules_changed == ["day14-check"] and report.escalations == []

    [applied] = await apply_migrations(stack.sessions, stack.client, registry, "recovery-check", 3,
                                       actor=MANAGER, audit=_audit)
    assert applied.result == "migrated" and applied.plan == plan  # the workflow planned what the dry run showed
    before_repeat = await enrolled.workflow.query(PathwayWorkflow.timeline)
    # Applying twice: nothing is left on an older version, and the workflow itself changes nothing.
    assert await apply_migrations(stack.sessions, stack.client, registry, "recovery-check", 3,
                                  actor=MANAGER, audit=_audit) == []
    repeat = await enrolled.workflow.execute_update(PathwayWorkflow.migrate, MigrationRequest(pathway=v3, actor=MANAGER))
    assert repeat.status == "unchanged"
    assert await enrolled.workflow.query(PathwayWorkflow.timeline) == before_repeat

    # The questionnaire open at the migration is answered under version 2's rules (threshold 10).
    accepted = await submit_response(stack.sessions, stack.client, stack.instruments, enrollment_id=enrollment_id,
                                     step_id="mood", occurrence=1, answers=CALM_BUT_ELEVEN, source="patient")
    assert accepted.outcome.tags == ["mood-risk"]
    # The check version 3 added is answered under version 3's rules (threshold 12): the same answers tag nothing.
    await time_skipping.sleep(_day(day_0, 14) + timedelta(hours=1) - await time_skipping.get_current_time())
    accepted = await submit_response(stack.sessions, stack.client, stack.instruments, enrollment_id=enrollment_id,
                                     step_id="day14-check", occurrence=1, answers=CALM_BUT_ELEVEN, source="patient")
    assert accepted.outcome.tags == []
    timeline = await enrolled.workflow.result()

    version_3_from_now = [(t.key, t.due) for t in compile_plan(v3, day_0, "UTC") if t.due > now]
    assert [(e.key, e.due) for e in timeline.entries if e.due > now] == version_3_from_now
    assert {e.key: e.status for e in timeline.entries} == {
        "welcome#1": "sent", "mood#1": "answered", "two-week-note#1": "sent", "day14-check#1": "answered",
        "closing#1": "sent"}
    assert timeline.pathway_version == 3 and timeline.tags == ["mood-risk"]
    [event] = [e for e in timeline.events if e.kind == "migration"]
    assert event.detail == (f"v2 -> v3 by {MANAGER}: added day14-check#1; removed day21-message#1; "
                            "moved week2-note#1; kept mood#1")
    subjects = [mail.subject for mail in stack.inbox.messages if mail.recipients == ("patient@example.test",)]
    assert subjects == ["Welcome", "Mood questionnaire", "Two weeks", "Day 14 check", "Goodbye"]
    async with stack.sessions() as session:
        assert (await session.get(Enrollment, enrollment_id)).pathway_version == 3
        [audited] = (await session.scalars(select(AccessAudit).where(AccessAudit.action == "enrollment.migrate"))).all()
    assert (audited.actor_id, audited.enrollment_id, audited.target) == (
        MANAGER, enrollment_id, "recovery-check v2 -> v3")


async def test_a_rollback_before_the_first_new_touchpoint_restores_the_old_plan(time_skipping, stack):
    registry, enrolled, _, _ = await _on_version_2_at_day_10(time_skipping, stack)
    before = await enrolled.workflow.query(PathwayWorkflow.timeline)
    await apply_migrations(stack.sessions, stack.client, registry, "recovery-check", 3, actor=MANAGER, audit=_audit)

    assert await roll_back(stack.sessions, stack.client, "recovery-check", enrolled.enrollment.id, actor=MANAGER, audit=_audit) == (
        "recovery-check v3 -> v2 (rolled back)")

    after = await enrolled.workflow.query(PathwayWorkflow.timeline)
    assert after.entries == before.entries and after.pathway_version == 2
    assert [e.detail for e in after.events if e.kind == "migration"][-1] == (
        f"v3 -> v2: migration rolled back by {MANAGER}")
    with pytest.raises(MigrationRefused, match="has not been migrated"):
        await roll_back(stack.sessions, stack.client, "recovery-check", enrolled.enrollment.id, actor=MANAGER, audit=_audit)
    timeline = await enrolled.workflow.result()
    assert {e.key: e.status for e in timeline.entries} == {
        "welcome#1": "sent", "mood#1": "expired", "week2-note#1": "sent", "day21-message#1": "sent", "closing#1": "sent"}
    async with stack.sessions() as session:
        assert (await session.get(Enrollment, enrolled.enrollment.id)).pathway_version == 2


async def test_no_rollback_once_the_first_touchpoint_of_the_new_plan_is_due(time_skipping, stack):
    registry, enrolled, _, day_0 = await _on_version_2_at_day_10(time_skipping, stack)
    await apply_migrations(stack.sessions, stack.client, registry, "recovery-check", 3, actor=MANAGER, audit=_audit)
    await time_skipping.sleep(_day(day_0, 12) + timedelta(minutes=5) - await time_skipping.get_current_time())

    with pytest.raises(MigrationRefused, match="cannot roll back: the first touchpoint of version 3 was due"):
        await roll_back(stack.sessions, stack.client, "recovery-check", enrolled.enrollment.id, actor=MANAGER, audit=_audit)
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    assert timeline.pathway_version == 3 and "day14-check#1" in {e.key for e in timeline.entries}


async def test_a_migration_to_a_version_without_the_open_step_is_refused_and_changes_nothing(time_skipping, stack):
    _, enrolled, v3, _ = await _on_version_2_at_day_10(time_skipping, stack)
    without_mood = v3.model_copy(update={"version": 4, "steps": [s for s in v3.steps if s.id != "mood"]})
    before = await enrolled.workflow.query(PathwayWorkflow.timeline)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await enrolled.workflow.execute_update(PathwayWorkflow.migrate,
                                               MigrationRequest(pathway=without_mood, actor=MANAGER))

    assert str(refused.value.cause) == "cannot migrate: mood#1 is open and version 4 no longer has step 'mood'"
    assert await enrolled.workflow.query(PathwayWorkflow.timeline) == before


def _escalating(source: str, *, pause: bool) -> str:
    """The version with its mood rule escalating, on a policy that may hold the pathway."""
    policy = (f"escalation_policies:\n  default:\n    pause_pathway: {str(pause).lower()}\n"
              "    tiers: [{notify: midwives, ack_within: 1h}, {notify: obstetrics-on-call}]\nsteps:\n")
    return (source.replace("steps:\n", policy, 1)
            .replace("{when: score >= referral_score, tag: mood-risk}",
                     "{when: score >= referral_score, tag: mood-risk, escalate: {reason: Low mood}}", 1))


async def _escalated_at_day_10(time_skipping, stack, *, pause: bool):
    registry = PathwayRegistry(stack.sessions, stack.instruments)
    v2 = (await registry.deploy(_escalating(VERSION_2, pause=pause), "v2.yaml")).deployed.pathway
    await registry.deploy(_escalating(VERSION_3, pause=pause), "v3.yaml")
    anchor = (await time_skipping.get_current_time()).date() + timedelta(days=1)
    enrolled = await stack.enroll(await stack.add_patient(timezone="UTC"), v2, anchor)
    day_0 = datetime.combine(anchor, time(0), tzinfo=UTC)
    await time_skipping.sleep(day_0 + timedelta(days=10, hours=12) - await time_skipping.get_current_time())
    await submit_response(stack.sessions, stack.client, stack.instruments, enrollment_id=enrolled.enrollment.id,
                          step_id="mood", occurrence=1, answers=CALM_BUT_ELEVEN, source="patient")
    timeline = await enrolled.workflow.query(PathwayWorkflow.timeline)
    [escalation_id] = [event.escalation_id for event in timeline.events if event.kind == "escalation"]
    return registry, enrolled, escalation_id


async def test_an_escalation_in_progress_is_reported_and_left_as_it_is(time_skipping, stack):
    registry, _, escalation_id = await _escalated_at_day_10(time_skipping, stack, pause=False)
    escalation = stack.client.get_workflow_handle_for(EscalationWorkflow.run, escalation_workflow_id(escalation_id))
    before = await escalation.query(EscalationWorkflow.state)

    [report] = await plan_migrations(stack.sessions, stack.client, registry, "recovery-check", 3,
                                     now=await time_skipping.get_current_time())
    [applied] = await apply_migrations(stack.sessions, stack.client, registry, "recovery-check", 3,
                                       actor=MANAGER, audit=_audit)

    assert report.escalations == [escalation_id] and "escalation" not in str(report.plan.blocked)
    assert f"  escalation {escalation_id} in progress: not touched" in report.lines()
    assert applied.result == "migrated"
    after = await escalation.query(EscalationWorkflow.state)
    # Its ladder goes on by itself (who has been told grows); nothing else of it changed.
    untouched = {"notified", "notification_failures"}
    assert after.status == "open" and after.model_dump(exclude=untouched) == before.model_dump(exclude=untouched)


async def test_an_escalation_that_holds_the_pathway_holds_its_migration_too(time_skipping, stack):
    _, enrolled, _ = await _escalated_at_day_10(time_skipping, stack, pause=True)
    v3 = (await PathwayRegistry(stack.sessions, stack.instruments).get("recovery-check", 3)).pathway

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await enrolled.workflow.execute_update(PathwayWorkflow.migrate, MigrationRequest(pathway=v3, actor=MANAGER))

    assert "an escalation holds this pathway until it is resolved" in str(refused.value.cause)
    assert (await enrolled.workflow.query(PathwayWorkflow.timeline)).pathway_version == 2
