"""`carepath db upgrade` and `db current`: the one migration step of a deployment, and the refusal of the
API and the worker to run on a schema it has not brought to head."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from api.main import create_app
from services.settings import Settings
from store.db import create_engine
from store.schema import SchemaNotCurrent, head_revision
from tests.databases import DATABASE_KINDS, Databases
from tools.cli import app
from worker.main import run_worker


@pytest.fixture(params=DATABASE_KINDS)
async def empty_url(request, databases: Databases) -> AsyncIterator[str]:
    url = await databases.new(request.param, migrated=False)
    yield url
    await databases.drop(url)


def carepath_db(url: str, command: str):
    return CliRunner().invoke(app, ["db", command], env={"CAREPATH_ENVIRONMENT": "test", "CAREPATH_DATABASE_URL": url})


async def test_the_api_and_the_worker_refuse_a_schema_never_migrated(empty_url: str):
    settings = Settings(ENVIRONMENT="test", DATABASE_URL=empty_url)
    needed = f"database schema is at nothing (never migrated), the code needs {head_revision()}: run `carepath db upgrade`"
    api = create_app(settings)
    with pytest.raises(SchemaNotCurrent) as refused:
        async with api.router.lifespan_context(api):
            pass
    assert str(refused.value) == needed
    with pytest.raises(SchemaNotCurrent) as refused:
        await run_worker(settings)
    assert str(refused.value) == needed


def test_upgrade_brings_the_schema_to_head_once_and_current_says_so(empty_url: str):
    before = carepath_db(empty_url, "current")
    assert before.exit_code == 1
    assert f"database schema is at nothing (never migrated), the code needs {head_revision()}" in before.output

    for _ in range(2):  # a second upgrade finds nothing to do
        upgraded = carepath_db(empty_url, "upgrade")
        assert upgraded.exit_code == 0, upgraded.output
        assert upgraded.output.endswith(f"database schema is at {head_revision()} (head)\n")

    after = carepath_db(empty_url, "current")
    assert (after.exit_code, after.output) == (0, f"database schema is at {head_revision()} (head)\n")


def test_a_database_that_does_not_answer_is_named_without_its_password():
    # Port 1 on loopback: nothing listens there.
    refused = carepath_db("postgresql+asyncpg://carepath:s3cret@127.0.0.1:1/carepath", "upgrade")
    assert refused.exit_code == 2
    assert refused.output.startswith("database postgresql+asyncpg://carepath:***@127.0.0.1:1/carepath: ")
    assert "s3cret" not in refused.output


async def test_a_schema_migrated_by_newer_code_is_named_as_such(database_url: str):
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
    await engine.dispose()

    refused = await asyncio.to_thread(carepath_db, database_url, "current")
    assert refused.exit_code == 1
    assert (f"database schema is at f00dfeedbeef, which this code does not know (it needs {head_revision()}): "
            "newer code migrated it; run that code") in refused.output
