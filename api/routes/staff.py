"""Staff accounts, kept by administrators: who may sign in, with which roles, in which teams."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy import select

from api.deps import SessionDep
from api.paging import PageDep
from api.routes.teams import team_or_404
from api.schemas import Message, StaffCreate, StaffCreated, StaffPublic
from api.security import Access, allow
from services.accounts import (
    AccountExists,
    UnknownTeams,
    create_staff,
    deactivate_staff,
    reset_password,
)
from services.identity import teams_of
from services.principals import Role
from store.db import StaffMember, StaffTeam

router = APIRouter(prefix="/staff", tags=["staff"])
Admin = Annotated[Access, Depends(allow(Role.ADMIN))]


@router.post("", response_model=StaffCreated, status_code=status.HTTP_201_CREATED,
             responses={409: {"model": Message, "description": "An account with this email exists."},
                        422: {"description": "Unknown team, or a malformed field."}})
async def create_staff_member(body: StaffCreate, session: SessionDep, access: Admin) -> StaffCreated:
    """Open an account. The one-time password is shown once: hand it over in person; it is changed at first use
    with POST /auth/password."""
    try:
        member, password = await create_staff(session, name=body.name, email=body.email, job_title=body.job_title,
                                              roles=body.roles, teams=body.teams)
    except AccountExists as exists:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exists)) from None
    except UnknownTeams as unknown:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(unknown)) from None
    await access.record(session, "staff.create", target=member.id)
    await session.commit()
    return StaffCreated(**(await one_staff_view(session, member)).model_dump(), one_time_password=password)


@router.get("", response_model=list[StaffPublic], responses={404: {"model": Message, "description": "Unknown team."}})
async def list_staff(session: SessionDep, access: Admin, page: PageDep,
                     team: Annotated[str | None, Query(description="only this team's members")] = None) -> list[StaffPublic]:
    """List staff accounts, by name; ?team= for one team's."""
    query = select(StaffMember).order_by(StaffMember.name, StaffMember.id)
    if team is not None:
        await team_or_404(session, team)
        query = query.where(StaffMember.id.in_(select(StaffTeam.staff_id).where(StaffTeam.team_id == team)))
    members = list(await session.scalars(page.apply(query)))
    teams = await teams_of(session, [member.id for member in members])
    return [staff_view(member, teams[member.id]) for member in members]


@router.get("/{staff_id}", response_model=StaffPublic, responses={404: {"model": Message}})
async def read_staff_member(staff_id: str, session: SessionDep, access: Admin) -> StaffPublic:
    """Read one staff account."""
    return await one_staff_view(session, await staff_or_404(session, staff_id))


@router.post("/{staff_id}/deactivate", response_model=StaffPublic, responses={404: {"model": Message}})
async def deactivate_staff_member(staff_id: str, session: SessionDep, access: Admin) -> StaffPublic:
    """Close an account at once: its tokens and sessions stop working on their next request."""
    member = await staff_or_404(session, staff_id)
    deactivate_staff(member)
    await access.record(session, "staff.deactivate", target=staff_id)
    await session.commit()
    return await one_staff_view(session, member)


@router.post("/{staff_id}/reset-password", response_model=StaffCreated, responses={404: {"model": Message}})
async def reset_staff_password(staff_id: str, session: SessionDep, access: Admin) -> StaffCreated:
    """A new one-time password (and the lock lifted) for someone who forgot theirs."""
    member = await staff_or_404(session, staff_id)
    password = reset_password(member)
    await access.record(session, "staff.reset_password", target=staff_id)
    await session.commit()
    return StaffCreated(**(await one_staff_view(session, member)).model_dump(), one_time_password=password)


async def staff_or_404(session: SessionDep, staff_id: str) -> StaffMember:
    member = await session.get(StaffMember, staff_id)
    if member is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"staff member '{staff_id}' not found")
    return member


async def one_staff_view(session: SessionDep, member: StaffMember) -> StaffPublic:
    return staff_view(member, (await teams_of(session, [member.id]))[member.id])


def staff_view(member: StaffMember, teams: list[str]) -> StaffPublic:
    return StaffPublic(id=member.id, name=member.name, email=member.email, job_title=member.job_title, roles=member.roles,
                       teams=teams, active=member.active, locked_until=member.locked_until,
                       last_sign_in_at=member.last_sign_in_at, created_at=member.created_at)
