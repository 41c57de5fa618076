"""The schema on both databases carepath runs on: SQLite and PostgreSQL, migrated by Alembic as at start."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from store.db import create_engine, migrate

BEFORE_ACCOUNTS = "5c0e1a7d2b94"


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(request, tmp_path) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    else:
        base = request.getfixturevalue("postgres_url")
        database = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(base)
        async with admin.connect() as connection:
            await (await connection.execution_options(isolation_level="AUTOCOMMIT")).execute(
                text(f"CREATE DATABASE {database}"))
        await admin.dispose()
        url = base.replace("/postgres?", f"/{database}?")
    return url


@pytest.fixture
async def engine(url: str):
    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()


async def test_the_access_audit_refuses_updates_and_deletes(engine):
    async with engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO access_audit (at, actor_kind, actor_id, actor_roles, action, outcome, patient_id) "
            "VALUES (CURRENT_TIMESTAMP, 'staff', 'st_1', 'clinician', 'patient.read', 'allowed', 'pt_1')"))
    for statement in ("UPDATE access_audit SET actor_id = 'st_2'", "DELETE FROM access_audit"):
        with pytest.raises(DBAPIError, match="access_audit is append-only"):
            async with engine.begin() as connection:
                await connection.execute(text(statement))
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT actor_id FROM access_audit"))).scalars().all() == ["st_1"]


async def test_staff_from_before_accounts_keep_their_team_and_get_unique_sign_in_emails(url: str):
    await asyncio.to_thread(migrate, url, BEFORE_ACCOUNTS)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO teams (id, name, email) VALUES ('midwives', 'Midwives', 'm@h.example')"))
            for staff_id, email in (("st_a", "Wang.Fang@Hospital.example"), ("st_b", "wang.fang@hospital.example")):
                await connection.execute(text(
                    "INSERT INTO staff (id, name, email, role, team_id, created_at) "
                    "VALUES (:id, 'Wang Fang', :email, 'midwife', 'midwives', CURRENT_TIMESTAMP)"), {"id": staff_id, "email": email})
        await asyncio.to_thread(migrate, url)
        async with engine.connect() as connection:
            staff = (await connection.execute(text("SELECT id, email, job_title, roles, active FROM staff ORDER BY id"))).all()
            teams = (await connection.execute(text("SELECT staff_id, team_id FROM staff_teams ORDER BY staff_id"))).all()
    finally:
        await engine.dispose()
    assert [(row.id, row.email, row.job_title, row.active) for row in staff] == [
        ("st_a", "wang.fang@hospital.example", "midwife", True),
        ("st_b", "wang.fang+st_b@hospital.example", "midwife", True)]
    assert [json.loads(row.roles) if isinstance(row.roles, str) else row.roles for row in staff] == [["clinician"]] * 2
    assert [tuple(row) for row in teams] == [("st_a", "midwives"), ("st_b", "midwives")]
