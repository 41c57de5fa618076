"""Which version of the schema a database is at, and moving it: the Alembic migrations in store/migrations.

Only `carepath db upgrade` migrates a deployment; the API and the worker refuse a schema not at head.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine


class SchemaNotCurrent(RuntimeError):
    """The database's schema is not the one this code was written for; nothing was changed."""

    @classmethod
    def between(cls, current: str | None, head: str) -> SchemaNotCurrent:
        if current is not None and current not in {script.revision for script in _migrations().walk_revisions()}:
            return cls(f"database schema is at {current}, which this code does not know (it needs {head}): "
                       "newer code migrated it; run that code")
        return cls(f"database schema is at {current or 'nothing (never migrated)'}, the code needs {head}: "
                   "run `carepath db upgrade`")


def _alembic_config(url: str, phone_region: str | None = None):
    from alembic.config import Config

    config = Config()
    if phone_region:
        # Where a phone number typed without its country code is from, for the migration to E.164.
        config.attributes["phone_region"] = phone_region
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    # Alembic's config is a ConfigParser: a percent-encoded URL (a password, a socket path) would be read as
    # interpolation unless its % are doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head", *, phone_region: str | None = None) -> None:
    """Bring the schema at `url` up to the newest migration, or to `revision` (blocking). Only
    `carepath db upgrade` runs it in a deployment: the API and the worker refuse a schema not at head.
    `phone_region`: the site's, for numbers stored without a country code (CN if None)."""
    from alembic import command

    if url.startswith("sqlite"):
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(_alembic_config(url, phone_region), revision)


def unmigrate(url: str, revision: str) -> None:
    """Take the schema at `url` back down to `revision` ("-1": one migration; "base": nothing), blocking."""
    from alembic import command

    command.downgrade(_alembic_config(url), revision)


def _migrations():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(""))


def head_revision() -> str:
    """The newest migration: the schema this code needs."""
    return _migrations().get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The migration the database was last brought to; None for a database never migrated."""
    from alembic.migration import MigrationContext

    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


async def require_current_schema(engine: AsyncEngine) -> None:
    """Refuse to serve on a schema other than head: migrating is one step of its own, run once before
    the API and the worker start, not by every process at once."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise SchemaNotCurrent.between(current, head)
