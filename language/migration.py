"""What moving one running enrollment to a newer version of its pathway would change.

A pure function of the two versions, the enrollment's timeline, its anchor and zone, and the
moment: the dry-run report (`carepath migrate plan`) and the workflow's `migrate` update compute the
same plan, so what a manager approved is what happens. History is never rewritten: a touchpoint
that was sent, answered or is open stays as it is; only touchpoints still planned change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict

from language.events import rules_for
from language.model import CRISIS_POLICY_NAME, Pathway
from language.plan import Touchpoint, compile_plan, touchpoint_key


class TouchpointState(Protocol):
    """One entry of an enrollment's timeline, as far as a migration looks at it."""

    step_id: str
    occurrence: int
    kind: str
    due: datetime
    status: str
    attempts: int


class Moved(BaseModel):
    """A planned touchpoint whose date or step id changes (a renamed step keeps its occurrences)."""

    model_config = ConfigDict(frozen=True)

    step_id: str
    occurrence: int
    kind: str
    was_step_id: str
    was_due: AwareDatetime
    due: AwareDatetime


class Kept(BaseModel):
    """A touchpoint in progress (a questionnaire open, a call being tried): it finishes under its own rules."""

    model_config = ConfigDict(frozen=True)

    step_id: str
    occurrence: int
    kind: str
    status: str


class ParameterChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    was: float | None
    becomes: float | None


class MigrationPlan(BaseModel):
    """Every change for one enrollment; `blocked` says why it cannot migrate (then nothing changes)."""

    model_config = ConfigDict(frozen=True)

    pathway_id: str
    from_version: int
    to_version: int
    added: list[Touchpoint] = []
    removed: list[Touchpoint] = []
    moved: list[Moved] = []
    renamed: dict[str, str] = {}
    kept: list[Kept] = []
    rules_changed: list[str] = []
    parameters_changed: list[ParameterChange] = []
    blocked: list[str] = []
    # Until this moment a migration can be rolled back: the first touchpoint of the new plan.
    first_new_due: AwareDatetime | None = None

    @property
    def touches_plan(self) -> bool:
        return bool(self.added or self.removed or self.moved)


def plan_migration(current: Pathway, target: Pathway, entries: Sequence[TouchpointState],
                   anchor: date | datetime, zone: str, now: datetime) -> MigrationPlan:
    """What changes if the enrollment on `current` (its timeline `entries`) follows `target` from `now` on."""
    header = {"pathway_id": current.id, "from_version": current.version, "to_version": target.version}
    if target.id != current.id:
        why = f"version {target.version} is of pathway '{target.id}', not '{current.id}'"
        return MigrationPlan(**header, blocked=[why])
    if target.version <= current.version:
        why = f"the enrollment is on version {current.version}; migrations only go to a newer version"
        return MigrationPlan(**header, blocked=[why])
    current_ids = {step.id for step in current.steps}
    renamed = {step.replaces: step.id for step in target.steps if step.replaces in current_ids}
    was_id = {new: old for old, new in renamed.items()}
    by_key = {(entry.step_id, entry.occurrence): entry for entry in entries}
    planned_keys = {(t.step_id, t.occurrence) for t in compile_plan(current, anchor, zone)}
    # Still to come under the old version; one already due (late after an outage) goes as it was planned.
    # A touchpoint of a step with no day of its own (after another step, a birthday, a holiday) is planned by
    # the run, not the plan: it leaves only with its step.
    target_ids = {step.id for step in target.steps}
    unplanned = {(entry.step_id, entry.occurrence) for entry in entries if (entry.step_id, entry.occurrence)
                 not in planned_keys and _dated_by_the_run(current, entry.step_id)
                 and renamed.get(entry.step_id, entry.step_id) not in target_ids}
    planned = {key: entry for key, entry in by_key.items() if key in planned_keys | unplanned
               and entry.status == "planned" and entry.attempts == 0 and entry.due > now}
    upcoming = [t for t in compile_plan(target, anchor, zone) if t.due > now]
    added, moved, matched = [], [], set()
    for touchpoint in upcoming:
        old_key = (was_id.get(touchpoint.step_id, touchpoint.step_id), touchpoint.occurrence)
        counterpart = by_key.get(old_key)
        if counterpart is None:
            added.append(touchpoint)
        elif old_key in planned:
            matched.add(old_key)
            if counterpart.due != touchpoint.due or old_key[0] != touchpoint.step_id:
                moved.append(Moved(step_id=touchpoint.step_id, occurrence=touchpoint.occurrence, kind=touchpoint.kind,
                                   was_step_id=old_key[0], was_due=counterpart.due, due=touchpoint.due))
        # Otherwise it already happened or is in progress under the old version: never twice.
    removed = [Touchpoint(step_id=e.step_id, occurrence=e.occurrence, kind=e.kind, due=e.due)
               for key, e in planned.items() if key not in matched]
    kept = [Kept(step_id=e.step_id, occurrence=e.occurrence, kind=e.kind, status=e.status)
            for e in entries if e.status == "open" or (e.kind == "call" and e.status == "planned" and e.attempts)]
    return MigrationPlan(
        **header, added=added, removed=sorted(removed, key=lambda t: t.due), moved=moved, renamed=renamed, kept=kept,
        rules_changed=_rules_changed(current, target, was_id), parameters_changed=_parameters_changed(current, target),
        blocked=[why for k in kept for why in _why_not_kept(k, current, target, renamed)],
        first_new_due=min((t.due for t in upcoming), default=None))


def _dated_by_the_run(pathway: Pathway, step_id: str) -> bool:
    step = next((step for step in pathway.steps if step.id == step_id), None)
    return step is not None and (step.after is not None or (step.at is not None and step.at.occasion is not None))


def _why_not_kept(kept: Kept, current: Pathway, target: Pathway, renamed: dict[str, str]) -> list[str]:
    """A touchpoint in progress finishes under its own version's rules; what they do must still exist."""
    key = touchpoint_key(kept.step_id, kept.occurrence)
    target_ids = {step.id for step in target.steps}
    if renamed.get(kept.step_id, kept.step_id) not in target_ids:
        return [f"{key} is {kept.status} and version {target.version} no longer has step '{kept.step_id}'"]
    step = current.step(kept.step_id)
    reasons = []
    for actions in [*getattr(step, "on", []), *(getattr(step, name, None) for name in ("on_expire", "on_not_reached",
                                                                                       "on_missed"))]:
        if actions is None:
            continue
        reasons += [f"{key} is {kept.status} and its rules {verb} '{step_id}', which version {target.version} "
                    f"does not have" for verb, ids in (("send", actions.send), ("call", actions.call))
                    for step_id in ids if step_id not in target_ids]
        policy = actions.escalate.policy if actions.escalate else None
        if policy not in (None, CRISIS_POLICY_NAME) and policy not in target.escalation_policies:
            reasons.append(f"{key} is {kept.status} and its rules escalate on policy '{policy}', which version "
                           f"{target.version} does not have")
    return list(dict.fromkeys(reasons))


def _rules_changed(current: Pathway, target: Pathway, was_id: dict[str, str]) -> list[str]:
    """Steps of the new version whose rules differ from those of the step they continue (or that are new), then
    events whose rules differ (`on_event lab-result`)."""
    def rules(step) -> tuple:
        return tuple(getattr(step, field, None) for field in ("on", "on_expire", "on_not_reached"))
    old_steps = {step.id: step for step in current.steps}
    changed = []
    for step in target.steps:
        old = old_steps.get(was_id.get(step.id, step.id))
        if any(rules(step)) and (old is None or rules(old) != rules(step)):
            changed.append(step.id)
    # An event's rules (on_event) decide the events that arrive after the migration: a change there counts too.
    changed += [f"on_event {event}" for event in dict.fromkeys([*current.events, *target.events])
                if rules_for(current, event) != rules_for(target, event)]
    return changed


def _parameters_changed(current: Pathway, target: Pathway) -> list[ParameterChange]:
    names = sorted(current.parameters.keys() | target.parameters.keys())
    values = [(name, current.parameters.get(name), target.parameters.get(name)) for name in names]
    return [ParameterChange(name=name, was=old.value if old else None, becomes=new.value if new else None)
            for name, old, new in values if (old and old.value) != (new and new.value)]


def describe(plan: MigrationPlan, zone: str) -> list[str]:
    """The plan in lines a clinical manager reads, dates in the patient's zone."""
    tz = ZoneInfo(zone)

    def when(moment: datetime) -> str:
        return f"{moment.astimezone(tz):%Y-%m-%d %H:%M}"

    lines = [f"{plan.pathway_id} v{plan.from_version} -> v{plan.to_version}"]
    lines += [f"  cannot migrate: {why}" for why in plan.blocked]
    lines += [f"  renamed  {old} -> {new}" for old, new in plan.renamed.items()]
    lines += [f"  added    {t.key} {t.kind} {when(t.due)}" for t in plan.added]
    lines += [f"  removed  {t.key} {t.kind} {when(t.due)}" for t in plan.removed]
    lines += [f"  moved    {touchpoint_key(m.was_step_id, m.occurrence)} {when(m.was_due)} -> "
              f"{touchpoint_key(m.step_id, m.occurrence)} {when(m.due)}" for m in plan.moved]
    lines += [f"  kept     {touchpoint_key(k.step_id, k.occurrence)} {k.kind} {k.status}: finishes under "
              f"v{plan.from_version}'s rules" for k in plan.kept]
    lines += [f"  rules    {step_id} change" for step_id in plan.rules_changed]
    lines += [f"  threshold {p.name}: {_number(p.was)} -> {_number(p.becomes)}" for p in plan.parameters_changed]
    if plan.first_new_due and not plan.blocked:
        lines.append(f"  can be rolled back until {when(plan.first_new_due)}")
    return lines


def _number(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"
