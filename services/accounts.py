"""Staff accounts as administrators keep them: open one, reset its password, close it.

Signing in and checking credentials is services/identity.py; this module only changes accounts.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import hash_password, one_time_password
from services.principals import Role
from store.db import StaffMember, StaffTeam, TeamRecord


class AccountExists(Exception):
    """Emails are unique: they are what people sign in with."""


class UnknownTeams(Exception):
    pass


# The languages the console speaks; the first is a new account's (store.db.StaffMember.locale).
STAFF_LOCALES = ("zh-CN", "en")


class LocaleRefused(ValueError):
    pass


async def create_staff(session: AsyncSession, *, name: str, email: str, job_title: str | None,
                       roles: Collection[Role], teams: Collection[str]) -> tuple[StaffMember, str]:
    """A new active account and its one-time password (returned once, stored only as a hash)."""
    email = email.strip().lower()
    if await session.scalar(select(StaffMember.id).where(StaffMember.email == email)) is not None:
        raise AccountExists(f"an account with the email {email} exists")
    unknown = sorted(set(teams) - set(await session.scalars(select(TeamRecord.id).where(TeamRecord.id.in_(teams)))))
    if unknown:
        raise UnknownTeams(f"no team {', '.join(unknown)}; see GET /teams")
    password = one_time_password()
    member = StaffMember(name=name, email=email, job_title=job_title, roles=sorted(roles), active=True,
                         password_hash=hash_password(password))
    session.add(member)
    await session.flush()
    session.add_all(StaffTeam(staff_id=member.id, team_id=team) for team in sorted(set(teams)))
    return member, password


def reset_password(member: StaffMember) -> str:
    password = one_time_password()
    member.password_hash = hash_password(password)
    member.failed_sign_ins, member.locked_until = 0, None
    return password


def deactivate_staff(member: StaffMember) -> None:
    """Tokens are checked against the account on every request, so this takes effect at once."""
    member.active = False


async def set_locale(session: AsyncSession, staff_id: str, locale: str) -> StaffMember:
    """A staff member's choice of the console's language, kept on their account."""
    if locale not in STAFF_LOCALES:
        raise LocaleRefused(f"the console speaks {', '.join(STAFF_LOCALES)}, not {locale!r}")
    member = await session.get(StaffMember, staff_id)
    if member is None:
        raise LookupError(f"no staff member {staff_id}")
    member.locale = locale
    return member


async def names_of(session: AsyncSession, staff_ids: Collection[str]) -> dict[str, str]:
    """Staff members' names by id, for showing who did what (an audit line keeps only the id)."""
    if not staff_ids:
        return {}
    return dict((await session.execute(select(StaffMember.id, StaffMember.name)
                                       .where(StaffMember.id.in_(staff_ids)))).all())
