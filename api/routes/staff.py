"""Staff members: the people who acknowledge and resolve escalations and record calls, each in one team."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select

from api.deps import SessionDep
from api.routes.teams import team_or_404, team_or_422
from api.schemas import Message, StaffCreate, StaffPublic
from store.db import StaffMember

router = APIRouter(prefix="/staff", tags=["staff"])


@router.post("", response_model=StaffPublic, status_code=status.HTTP_201_CREATED,
             responses={422: {"description": "Unknown team, or a malformed field."}})
async def create_staff_member(body: StaffCreate, session: SessionDep) -> StaffMember:
    """Add a staff member to a team; they act on that team's worklist."""
    await team_or_422(session, body.team_id)
    member = StaffMember(**body.model_dump())
    session.add(member)
    await session.commit()
    return member


@router.get("", response_model=list[StaffPublic], responses={404: {"model": Message, "description": "Unknown team."}})
async def list_staff(session: SessionDep,
                     team: Annotated[str | None, Query(description="only this team's members")] = None) -> list[StaffMember]:
    """List staff members, by name; ?team= for one team's."""
    query = select(StaffMember).order_by(StaffMember.name, StaffMember.id)
    if team is not None:
        await team_or_404(session, team)
        query = query.where(StaffMember.team_id == team)
    return list(await session.scalars(query))


@router.get("/{staff_id}", response_model=StaffPublic, responses={404: {"model": Message}})
async def read_staff_member(staff_id: str, session: SessionDep) -> StaffMember:
    """Read one staff member."""
    return await staff_or_404(session, staff_id)


async def staff_or_404(session: SessionDep, staff_id: str) -> StaffMember:
    member = await session.get(StaffMember, staff_id)
    if member is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"staff member '{staff_id}' not found")
    return member
