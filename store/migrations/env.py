"""Alembic environment: runs migrations over the application's async engine."""

import asyncio

from alembic import context
from sqlalchemy import event

from store.db import Base, create_engine

target_metadata = Base.metadata


def run_offline() -> None:
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    # Batch mode lets later migrations alter columns on SQLite, which has no ALTER COLUMN.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _without_foreign_keys(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


async def run_online() -> None:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
    if engine.dialect.name == "sqlite":
        # Batch mode changes a SQLite table by copying it, dropping it and renaming the copy: dropping a table
        # that others refer to fails while foreign keys are enforced (PostgreSQL alters in place).
        event.listen(engine.sync_engine, "connect", _without_foreign_keys)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    asyncio.run(run_online())
