"""What a clinician may see: the patients and enrollments their teams are involved in.

A team is involved in an enrollment when its pathway names the team (an escalation tier or a call
step, recorded at enrollment), when an escalation of it was put to the team or handed to it, or
when the team got one of its call tasks. Whoever is not involved is told "not found", not
"forbidden": the existence of a patient is itself patient data.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Select, exists, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from services.principals import Principal, Role
from store.db import (
    CallTaskRecord,
    Enrollment,
    EnrollmentTeam,
    EscalationAudit,
    EscalationRecord,
)


def sees_everything(principal: Principal) -> bool:
    """A hospital system enrolls and reads status for the whole hospital; a clinician sees their teams' work."""
    return Role.INTEGRATION in principal.roles


def involved_enrollments(teams: Collection[str]) -> Select:
    """The ids of enrollments any of `teams` is involved in."""
    return union(
        select(EnrollmentTeam.enrollment_id).where(EnrollmentTeam.team_id.in_(teams)),
        select(EscalationRecord.enrollment_id).where(EscalationRecord.team.in_(teams)),
        select(EscalationRecord.enrollment_id).join(EscalationAudit, EscalationAudit.escalation_id == EscalationRecord.id)
        .where(EscalationAudit.action == "notified", EscalationAudit.team.in_(teams)),
        select(CallTaskRecord.enrollment_id).where(CallTaskRecord.team.in_(teams)),
    )


async def may_see_enrollment(session: AsyncSession, principal: Principal, enrollment_id: str) -> bool:
    if sees_everything(principal):
        return True
    return bool(await session.scalar(select(exists().where(
        involved_enrollments(principal.teams).subquery().c[0] == enrollment_id))))


async def may_see_patient(session: AsyncSession, principal: Principal, patient_id: str) -> bool:
    if sees_everything(principal):
        return True
    involved = involved_enrollments(principal.teams).subquery()
    return bool(await session.scalar(select(exists().where(
        Enrollment.patient_id == patient_id, Enrollment.id.in_(select(involved.c[0]))))))


def visible_teams(principal: Principal, asked: str | None) -> Collection[str] | None:
    """The teams whose worklist a request may read: the one asked for if it is theirs, else all of theirs.
    None means every team (a principal not bound to teams)."""
    if sees_everything(principal):
        return None if asked is None else [asked]
    if asked is not None:
        return [asked] if asked in principal.teams else []
    return sorted(principal.teams)

