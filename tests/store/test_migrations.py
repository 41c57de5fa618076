"""The schema on both databases carepath runs on, SQLite and PostgreSQL: every migration up and down
again, and what the migrations do to data."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from store.db import Base, create_engine
from store.schema import current_revision, head_revision, migrate, unmigrate
from tests.databases import DATABASE_KINDS, Databases

BEFORE_ACCOUNTS = "5c0e1a7d2b94"
# The access audit's migration: going below it would drop the audit, which its downgrade refuses.
OLDEST_REVERSIBLE = "9a3f6c1e5b20"


@pytest.fixture(params=DATABASE_KINDS)
async def url(request, databases: Databases) -> AsyncIterator[str]:
    """An empty database of each kind."""
    url = await databases.new(request.param, migrated=False)
    yield url
    await databases.drop(url)


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()


async def differences_from_the_models(engine: AsyncEngine) -> list:
    """What autogenerate would write to bring the database to the models: nothing, if the migrations are right."""
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_the_migrations_go_down_and_up_again_to_the_models_schema(url: str):
    engine = create_engine(url)
    try:
        await asyncio.to_thread(migrate, url)
        assert await differences_from_the_models(engine) == []
        assert await current_revision(engine) == head_revision()

        await asyncio.to_thread(unmigrate, url, "-1")
        assert await current_revision(engine) not in (None, head_revision())
        await asyncio.to_thread(migrate, url)
        assert await differences_from_the_models(engine) == []

        await asyncio.to_thread(unmigrate, url, OLDEST_REVERSIBLE)
        assert await current_revision(engine) == OLDEST_REVERSIBLE
        await asyncio.to_thread(migrate, url)
        assert await differences_from_the_models(engine) == []
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_no_migration_goes_below_the_access_audit_which_is_kept(engine: AsyncEngine, url: str):
    await asyncio.to_thread(unmigrate, url, OLDEST_REVERSIBLE)
    with pytest.raises(NotImplementedError, match="the access audit is kept: restore a backup"):
        await asyncio.to_thread(unmigrate, url, "base")
    assert await current_revision(engine) == OLDEST_REVERSIBLE
    assert "access_audit" in await tables(engine)


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


async def test_patients_phones_become_e164_and_unreadable_ones_stay_as_typed_and_are_reported(
        url: str, caplog: pytest.LogCaptureFixture):
    before_e164 = "f3b9d2c6a814"
    await asyncio.to_thread(migrate, url, before_e164)
    typed = {"pt_national": "138 0013 8000", "pt_international": "+44 20 7946 0958", "pt_stored": "+8613900000000",
             "pt_unreadable": "ask the ward", "pt_none": None}
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for patient_id, phone in typed.items():
                await connection.execute(text(
                    "INSERT INTO patients (id, given_name, family_name, phone, locale, timezone, created_at) "
                    "VALUES (:id, 'Mei', 'Chen', :phone, 'zh-CN', 'Asia/Shanghai', CURRENT_TIMESTAMP)"),
                    {"id": patient_id, "phone": phone})
        with caplog.at_level("WARNING", logger="carepath.migrations"):
            await asyncio.to_thread(migrate, url, phone_region="CN")
        async with engine.connect() as connection:
            stored = dict((await connection.execute(text("SELECT id, phone FROM patients"))).all())
    finally:
        await engine.dispose()
    assert stored == {"pt_national": "+8613800138000", "pt_international": "+442079460958",
                      "pt_stored": "+8613900000000", "pt_unreadable": "ask the ward", "pt_none": None}
    [report] = [record.getMessage() for record in caplog.records if record.name == "carepath.migrations"]
    assert "pt_unreadable" in report and "ask the ward" not in report


async def test_touchpoints_from_before_their_patient_id_get_their_enrollments_patient(url: str):
    await asyncio.to_thread(migrate, url, "a7c3e9d1f5b2")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for patient_id in ("pt_a", "pt_b"):
                await connection.execute(text(
                    "INSERT INTO patients (id, given_name, family_name, locale, timezone, created_at) "
                    "VALUES (:id, 'Mei', 'Chen', 'zh-CN', 'Asia/Shanghai', CURRENT_TIMESTAMP)"), {"id": patient_id})
                await connection.execute(text(
                    "INSERT INTO enrollments (id, patient_id, pathway_id, pathway_version, anchor, timezone, status, "
                    "request_fingerprint, created_at) VALUES (:id, :patient, 'p', 1, CURRENT_TIMESTAMP, 'UTC', "
                    "'active', 'x', CURRENT_TIMESTAMP)"), {"id": f"en_{patient_id}", "patient": patient_id})
                await connection.execute(text(
                    "INSERT INTO touchpoints (enrollment_id, step_id, occurrence, purpose, channel, status, due_at, "
                    "attempts) VALUES (:enrollment, 's', 1, 'scheduled', 'email', 'sent', CURRENT_TIMESTAMP, 1)"),
                    {"enrollment": f"en_{patient_id}"})
        await asyncio.to_thread(migrate, url)
        async with engine.connect() as connection:
            stored = dict((await connection.execute(text("SELECT enrollment_id, patient_id FROM touchpoints"))).all())
    finally:
        await engine.dispose()
    assert stored == {"en_pt_a": "pt_a", "en_pt_b": "pt_b"}
