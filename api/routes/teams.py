"""The site's teams: who escalations and call tasks go to, and how each is told.

pathways/site/teams.yaml seeds them at start (see services.teams); changes made here are kept.
"""

from collections.abc import Collection
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.deps import SessionDep, SettingsDep
from api.paging import PageDep
from api.schemas import NO_CHANNEL, Message, TeamCreate, TeamPublic, TeamUpdate
from api.security import Access, allow
from services.principals import Role
from services.scope import visible_teams
from services.settings import Settings
from store.db import TeamRecord

router = APIRouter(prefix="/teams", tags=["teams"])

Admin = Annotated[Access, Depends(allow(Role.ADMIN))]
Routing = Annotated[Access, Depends(allow(Role.ADMIN, Role.CLINICAL_MANAGER))]
Staff = Annotated[Access, Depends(allow(Role.ADMIN, Role.CLINICAL_MANAGER, Role.CLINICIAN))]


@router.post("", response_model=TeamPublic, status_code=status.HTTP_201_CREATED,
             responses={409: {"model": Message, "description": "A team with this id exists."}})
async def create_team(body: TeamCreate, session: SessionDep, settings: SettingsDep, access: Admin) -> TeamRecord:
    """Add a team, which pathways can then notify and give call tasks to."""
    refuse_webhook(settings, body.webhook)
    if await session.get(TeamRecord, body.id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, already_exists(body.id))
    team = TeamRecord(**body.model_dump())
    session.add(team)
    await access.record(session, "team.create", target=body.id)
    try:
        await session.commit()
    except IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, already_exists(body.id)) from None
    return team


@router.get("", response_model=list[TeamPublic])
async def list_teams(session: SessionDep, access: Staff, page: PageDep) -> list[TeamRecord]:
    """List every team, by id."""
    return list(await session.scalars(page.apply(select(TeamRecord).order_by(TeamRecord.id))))


@router.get("/{team_id}", response_model=TeamPublic, responses={404: {"model": Message}})
async def read_team(team_id: str, session: SessionDep, access: Staff) -> TeamRecord:
    """Read one team."""
    return await team_or_404(session, team_id)


@router.patch(
    "/{team_id}",
    response_model=TeamPublic,
    responses={404: {"model": Message}, 422: {"description": "A malformed field, or no channel would remain."}},
)
async def update_team(team_id: str, body: TeamUpdate, session: SessionDep, settings: SettingsDep,
                      access: Routing) -> TeamRecord:
    """Change a team's name or channels; the roster file never overwrites the change."""
    team = await team_or_404(session, team_id)
    changes = body.model_dump(exclude_unset=True)
    refuse_webhook(settings, changes.get("webhook"))
    if not changes.get("email", team.email) and not changes.get("webhook", team.webhook):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, NO_CHANNEL.format(team_id))
    for name, value in changes.items():
        setattr(team, name, value)
    await access.record(session, "team.update", target=team_id)
    await session.commit()
    return team


def refuse_webhook(settings: Settings, webhook: str | None) -> None:
    problem = webhook and settings.webhook_problem(webhook)
    if problem:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problem)


def already_exists(team_id: str) -> str:
    return f"team '{team_id}' already exists; change it with PATCH /teams/{team_id}"


async def team_or_404(session: SessionDep, team_id: str) -> TeamRecord:
    team = await session.get(TeamRecord, team_id)
    if team is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"team '{team_id}' not found")
    return team


async def team_or_422(session: SessionDep, team_id: str) -> TeamRecord:
    """For a team named in a request's body: the request, not the URL, is what is wrong."""
    team = await session.get(TeamRecord, team_id)
    if team is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"no team '{team_id}'; see GET /teams, or add it with POST /teams")
    return team


async def teams_to_show(session: SessionDep, access: Access, team: str | None) -> Collection[str] | None:
    """The teams whose work a worklist request reads: the team asked for, which must be the principal's,
    or all of theirs. None: every team (a principal not bound to teams)."""
    if team is not None:
        await team_or_404(session, team)
    teams = visible_teams(access.principal, team)
    if team is not None and not teams:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"you are not a member of team '{team}'")
    return teams
