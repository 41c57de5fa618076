"""Fresh databases for tests, of each kind carepath runs on."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from store.db import create_engine
from store.schema import migrate

# Every test of the store runs on both databases carepath supports; its id says which.
DATABASE_KINDS = ["sqlite", "postgresql"]


class Databases:
    """New databases of either kind, each a test's own. A migrated one is a copy of a template migrated
    once per session (a file copy, or PostgreSQL's CREATE DATABASE ... TEMPLATE): replaying every migration
    per test would cost far more, and the migrations have tests of their own (tests/store/)."""

    def __init__(self, folder: Path, request: pytest.FixtureRequest):
        self.folder = folder
        self._request = request
        self._templates: dict[str, str] = {}

    async def new(self, kind: str, *, migrated: bool = True) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        template = await self._template(kind) if migrated else None
        if kind == "sqlite":
            path = self.folder / f"{name}.db"
            if template:
                shutil.copyfile(make_url(template).database, path)
            return f"sqlite+aiosqlite:///{path}"
        server = self._request.getfixturevalue("postgres_url")
        await self._administer(server, f"CREATE DATABASE {name}" + (f" TEMPLATE {make_url(template).database}"
                                                                      if template else ""))
        return make_url(server).set(database=name).render_as_string(hide_password=False)

    async def drop(self, url: str) -> None:
        """PostgreSQL's databases go as soon as their test ends; the server keeps only the templates."""
        parsed = make_url(url)
        if parsed.get_backend_name() == "postgresql":
            await self._administer(self._request.getfixturevalue("postgres_url"),
                                   f"DROP DATABASE {parsed.database} WITH (FORCE)")

    async def _template(self, kind: str) -> str:
        if kind not in self._templates:
            url = await self.new(kind, migrated=False)
            await asyncio.to_thread(migrate, url)
            self._templates[kind] = url
        return self._templates[kind]

    @staticmethod
    async def _administer(server: str, statement: str) -> None:
        engine = create_engine(server)
        try:
            async with engine.connect() as connection:
                # CREATE and DROP DATABASE cannot run inside a transaction.
                await (await connection.execution_options(isolation_level="AUTOCOMMIT")).execute(text(statement))
        finally:
            await engine.dispose()
