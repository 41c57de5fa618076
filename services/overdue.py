"""When an open escalation's acknowledgement is due: the time its current tier was told plus that tier's
`ack_within`. Past it, the workflow climbs to the next tier by itself; the worklist marks it overdue
meanwhile, and on the last tier (nobody further to tell) for as long as nobody has acknowledged."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from language.model import CRISIS_POLICY_NAME, EscalationPolicy, crisis_policy
from services.registry import PathwayRegistry, UnknownPathway
from store.db import Enrollment, EscalationAudit, EscalationRecord


async def acknowledgement_due(session: AsyncSession, registry: PathwayRegistry,
                              escalation_ids: Collection[str]) -> dict[str, datetime]:
    """Escalation id → when acknowledging is due, for the open ones whose current tier is on their policy's
    ladder with an `ack_within` (a hand-over to another team has none: that team was asked directly)."""
    if not escalation_ids:
        return {}
    rows = (await session.execute(
        select(EscalationRecord, Enrollment.pathway_id, Enrollment.pathway_version)
        .join(Enrollment, Enrollment.id == EscalationRecord.enrollment_id)
        .where(EscalationRecord.id.in_(escalation_ids), EscalationRecord.status == "open"))).all()
    told_at: dict[tuple[str, int], datetime] = {}
    for line in await session.scalars(select(EscalationAudit).where(
            EscalationAudit.escalation_id.in_([escalation.id for escalation, _, _ in rows]),
            EscalationAudit.action == "notified").order_by(EscalationAudit.at)):
        told_at[(line.escalation_id, line.tier)] = line.at  # the latest telling of each tier
    due: dict[str, datetime] = {}
    for escalation, pathway_id, version in rows:
        try:
            pathway = (await registry.get(pathway_id, version)).pathway
        except UnknownPathway:
            continue
        policy: EscalationPolicy | None = (crisis_policy(pathway) if escalation.policy == CRISIS_POLICY_NAME
                                           else pathway.escalation_policies.get(escalation.policy))
        if policy is None or not 1 <= escalation.tier <= len(policy.tiers):
            continue
        rung = policy.tiers[escalation.tier - 1]
        told = told_at.get((escalation.id, escalation.tier))
        if rung.ack_within is not None and told is not None and rung.notify == escalation.team:
            due[escalation.id] = told + rung.ack_within
    return due
