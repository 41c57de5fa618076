"""The site's team roster (pathways/site/teams.yaml) in the database, where the API manages it.

The file seeds the table; from then on the database is the truth. A team the file has and the
database lacks is added at every start; a team that differs (changed through the API) is kept as
it is and reported, so an operator editing the file sees why the change did not take.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from language.loader import DocumentInvalid
from language.teams import Team
from services.site import load_teams
from store.db import TeamRecord

log = logging.getLogger(__name__)

TEAM_FIELDS = ("name", "email", "webhook")


@dataclass
class SeededTeams:
    added: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """Teams whose stored version differs from the file's and was left as it was."""
    refused: list[str] = field(default_factory=list)


async def seed_teams(sessions: async_sessionmaker[AsyncSession], teams: Mapping[str, Team],
                     webhook_problem: Callable[[str], str | None]) -> SeededTeams:
    """Add the roster's teams that the database lacks; a team changed through the API is kept as it is,
    and a team whose webhook is not allowed is left out (and logged): it would never be told."""
    seeded = SeededTeams()
    for team in teams.values():
        problem = team.webhook and webhook_problem(team.webhook)
        if problem:
            seeded.refused.append(team.id)
            log.error("team %s from the roster file was not loaded: %s", team.id, problem)
            continue
        # One transaction per team: a second API process seeding at the same moment costs one
        # team's insert, not the whole roster.
        async with sessions() as session:
            stored = await session.get(TeamRecord, team.id)
            if stored is None:
                session.add(TeamRecord(id=team.id, **{name: getattr(team, name) for name in TEAM_FIELDS}))
                try:
                    await session.commit()
                except IntegrityError:
                    await session.rollback()  # added meanwhile by another process: theirs stands
                else:
                    seeded.added.append(team.id)
                continue
            differences = [f"{name} {getattr(stored, name)!r} (file: {getattr(team, name)!r})"
                           for name in TEAM_FIELDS if getattr(stored, name) != getattr(team, name)]
            if differences:
                seeded.kept.append(team.id)
                log.warning("team %s differs from the roster file; keeping the database's version "
                            "(changed through the API): %s", team.id, "; ".join(differences))
    return seeded


async def seed_teams_file(sessions: async_sessionmaker[AsyncSession], path: Path,
                          webhook_problem: Callable[[str], str | None]) -> SeededTeams:
    """Seed from a roster file; a missing or invalid file is logged and changes nothing."""
    if not path.is_file():
        log.info("no team roster at %s; teams come from the API only", path)
        return SeededTeams()
    try:
        teams = load_teams(path)
    except DocumentInvalid as invalid:
        log.error("%s was not loaded; it has %d problem(s):\n%s", path, len(invalid.problems), invalid)
        return SeededTeams()
    seeded = await seed_teams(sessions, teams, webhook_problem)
    log.info("%s: %d team(s), %d added, %d kept as changed through the API, %d refused", path.name, len(teams),
             len(seeded.added), len(seeded.kept), len(seeded.refused))
    return seeded
