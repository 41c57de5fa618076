"""Deployed pathway versions: kept forever, never changed; read back with their shape checked, not today's rules.

A version is identified by (pathway id, version) and its content by the sha256 of its YAML source.
Deploying the same content twice is harmless; deploying different content under a version that
exists is refused, because enrollments already running on that version must keep meaning what it
meant when they started. Parsed pathways are cached in memory: a stored version cannot change.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from language.holidays import HolidayCalendar
from language.instruments.model import Instrument
from language.loader import DocumentInvalid
from language.model import Pathway
from language.validation import parse_pathway, read_deployed, replaces_problems
from services.site import read_source
from store.db import PathwayVersion, TeamRecord, utcnow

log = logging.getLogger(__name__)


class UnknownPathway(LookupError):
    """No such pathway, or no such version of it, has been deployed."""


class VersionConflict(Exception):
    """The id and version are deployed already, with different content."""

    def __init__(self, pathway_id: str, version: int):
        self.pathway_id, self.version = pathway_id, version
        super().__init__(f"pathway '{pathway_id}' version {version} is already deployed with different content; "
                         f"a deployed version never changes: raise 'version' to deploy the new content")


@dataclass(frozen=True)
class DeployedPathway:
    pathway: Pathway
    source: str
    sha256: str
    deployed_at: datetime


@dataclass(frozen=True)
class Deployment:
    deployed: DeployedPathway
    created: bool


def source_digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


class PathwayRegistry:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], instruments: Mapping[str, Instrument],
                 calendars: Mapping[str, HolidayCalendar] | None = None):
        self._sessions = sessions
        self._instruments = instruments
        self._calendars = calendars or {}
        self._cache: dict[tuple[str, int], DeployedPathway] = {}

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return self._instruments

    async def deploy(self, source: str, file: str) -> Deployment:
        """Store a new version; raise DocumentInvalid or VersionConflict, changing nothing."""
        pathway = parse_pathway(source, file, self._instruments, await self._teams(), self._calendars)
        if any(step.replaces for step in pathway.steps):
            earlier = [(await self.get(pathway.id, version)).pathway for version in await self.versions(pathway.id)
                       if version < pathway.version]
            if problems := replaces_problems(source, file, pathway, earlier):
                raise DocumentInvalid(problems)
        digest = source_digest(source)
        key = (pathway.id, pathway.version)
        async with self._sessions() as session:
            stored = await session.get(PathwayVersion, key)
            if stored is None:
                stored = PathwayVersion(pathway_id=pathway.id, version=pathway.version, title=pathway.title,
                                        source=source, sha256=digest, deployed_at=utcnow())
                session.add(stored)
                try:
                    await session.commit()
                    created = True
                except IntegrityError:
                    # Another process deployed this version between our read and our write.
                    await session.rollback()
                    stored, created = await session.get(PathwayVersion, key), False
            else:
                created = False
        if stored.sha256 != digest:
            raise VersionConflict(pathway.id, pathway.version)
        deployed = self._cache.setdefault(key, DeployedPathway(pathway, stored.source, stored.sha256, stored.deployed_at))
        return Deployment(deployed, created)

    async def load_directory(self, folder: Path) -> None:
        """Deploy every `*.yaml` directly in `folder` (not its subfolders, which hold other documents).

        A file that is invalid, or that would change a deployed version, is logged and skipped: the
        pathways that are fine still load, and what is stored stays as it was.
        """
        if not folder.is_dir():
            log.warning("pathways folder %s does not exist; no pathways loaded from files", folder)
            return
        for path in sorted(folder.glob("*.yaml")):
            try:
                deployment = await self.deploy(read_source(path), str(path))
            except DocumentInvalid as invalid:
                log.error("%s was not loaded; it has %d problem(s):\n%s", path, len(invalid.problems), invalid)
            except VersionConflict as conflict:
                log.error("%s was not loaded: %s (the stored version stays in use)", path, conflict)
            else:
                pathway = deployment.deployed.pathway
                log.info("%s: pathway %s version %d %s", path.name, pathway.id, pathway.version,
                         "deployed" if deployment.created else "already deployed")

    async def get(self, pathway_id: str, version: int | None = None) -> DeployedPathway:
        """One version, or the newest when `version` is None; raise UnknownPathway."""
        if version is None:
            versions = await self.versions(pathway_id)
            if not versions:
                raise UnknownPathway(f"no pathway '{pathway_id}' is deployed")
            version = versions[-1]
        if (pathway_id, version) in self._cache:
            return self._cache[(pathway_id, version)]
        async with self._sessions() as session:
            stored = await session.get(PathwayVersion, (pathway_id, version))
        if stored is None:
            raise UnknownPathway(f"pathway '{pathway_id}' has no version {version}"
                                 if await self.versions(pathway_id) else f"no pathway '{pathway_id}' is deployed")
        pathway = read_deployed(stored.source, f"{pathway_id}@{version}")
        return self._cache.setdefault((pathway_id, version),
                                      DeployedPathway(pathway, stored.source, stored.sha256, stored.deployed_at))

    async def pathway(self, pathway_id: str, version: int) -> Pathway:
        """One deployed version's pathway: where a worker's deliveries read their templates."""
        return (await self.get(pathway_id, version)).pathway

    async def _teams(self) -> list[str]:
        """The teams pathways may name: the database's, seeded from the roster and added through the API."""
        async with self._sessions() as session:
            return list(await session.scalars(select(TeamRecord.id)))

    async def versions(self, pathway_id: str) -> list[int]:
        async with self._sessions() as session:
            return list(await session.scalars(select(PathwayVersion.version)
                                              .where(PathwayVersion.pathway_id == pathway_id)
                                              .order_by(PathwayVersion.version)))

    async def latest(self) -> list[DeployedPathway]:
        """The newest version of every pathway, by id."""
        async with self._sessions() as session:
            newest = (await session.execute(select(PathwayVersion.pathway_id, func.max(PathwayVersion.version))
                                            .group_by(PathwayVersion.pathway_id)
                                            .order_by(PathwayVersion.pathway_id))).all()
        return [await self.get(pathway_id, version) for pathway_id, version in newest]
