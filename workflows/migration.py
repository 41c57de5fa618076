"""Moving a running enrollment's timeline to a newer pathway version, and back: pure functions.

PathwayWorkflow's `migrate` and `rollback_migration` updates call these at a safe point (nothing in
flight) and then put the first item of each newly planned touchpoint on the agenda. History stays:
only entries still planned are replaced; sent stays sent, open stays open under its own rules.
"""

from __future__ import annotations

from datetime import datetime

from language.migration import MigrationPlan
from language.model import Pathway
from language.plan import touchpoint_key
from workflows.contracts import Migration, TimelineEntry, TimelineEvent


def migrated(entries: list[TimelineEntry], plan: MigrationPlan, previous: Pathway, actor: str,
             now: datetime) -> tuple[list[TimelineEntry], Migration]:
    """The timeline following the plan's version, and the record of the change (for rules and rollback)."""
    leaving = {touchpoint_key(t.step_id, t.occurrence) for t in plan.removed}
    leaving |= {touchpoint_key(m.was_step_id, m.occurrence) for m in plan.moved}
    replaced = [entry for entry in entries if entry.status == "planned" and entry.key in leaving]
    arriving = [TimelineEntry(step_id=t.step_id, occurrence=t.occurrence, kind=t.kind, due=t.due) for t in plan.added]
    arriving += [TimelineEntry(step_id=m.step_id, occurrence=m.occurrence, kind=m.kind, due=m.due) for m in plan.moved]
    record = Migration(at=now, actor=actor, previous=previous, plan=plan,
                       kept=[touchpoint_key(k.step_id, k.occurrence) for k in plan.kept],
                       replaced=replaced, planned=[entry.key for entry in arriving])
    return _in_due_order([e for e in entries if not any(e is r for r in replaced)] + arriving), record


def rolled_back(entries: list[TimelineEntry], migration: Migration) -> list[TimelineEntry]:
    """The timeline as it was before `migration`: its planned entries out, those it replaced back."""
    planned = set(migration.planned)
    kept = [entry for entry in entries if not (entry.status == "planned" and entry.key in planned)]
    return _in_due_order(kept + [entry.model_copy() for entry in migration.replaced])


def can_roll_back(migration: Migration, entries: list[TimelineEntry], now: datetime) -> str | None:
    """Why the migration can no longer be undone, or None while it can (nothing of the new plan began)."""
    if migration.plan.first_new_due is not None and now >= migration.plan.first_new_due:
        return (f"the first touchpoint of version {migration.plan.to_version} was due at "
                f"{migration.plan.first_new_due:%Y-%m-%d %H:%M} UTC; a migration can be rolled back only before")
    planned = set(migration.planned)
    started = [entry.key for entry in entries if entry.key in planned and entry.status != "planned"]
    if started:
        return f"{', '.join(started)} of version {migration.plan.to_version} already happened"
    return None


def migration_event(now: datetime, migration: Migration, *, rolled_back_by: str | None = None) -> TimelineEvent:
    plan = migration.plan
    if rolled_back_by is not None:
        detail = f"v{plan.to_version} -> v{plan.from_version}: migration rolled back by {rolled_back_by}"
    else:
        changes = {"added": [t.key for t in plan.added], "removed": [t.key for t in plan.removed],
                   "moved": [touchpoint_key(m.was_step_id, m.occurrence) for m in plan.moved], "kept": migration.kept}
        detail = f"v{plan.from_version} -> v{plan.to_version} by {migration.actor}: " + (
            "; ".join(f"{what} {', '.join(keys)}" for what, keys in changes.items() if keys) or "no touchpoint changes")
    return TimelineEvent(at=now, kind="migration", detail=detail)


def _in_due_order(entries: list[TimelineEntry]) -> list[TimelineEntry]:
    return sorted(entries, key=lambda entry: entry.due)
