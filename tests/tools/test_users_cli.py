"""`carepath users create-admin`: the first administrator of a production database, password shown once."""

from __future__ import annotations

import re
import secrets
import sqlite3

from typer.testing import CliRunner

from tools.cli import app


def run(tmp_path, *arguments: str, command: tuple[str, ...] = ("users", "create-admin")):
    environment = {"CAREPATH_ENVIRONMENT": "production", "CAREPATH_SECRET_KEY": secrets.token_urlsafe(48),
                   "CAREPATH_PAYLOAD_KEYS": "k1:" + "A" * 43 + "=",
                   "CAREPATH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"}
    return CliRunner().invoke(app, [*command, *arguments], env=environment)


def test_create_admin_refuses_a_database_not_migrated_and_leaves_it_untouched(tmp_path):
    refused = run(tmp_path, "--email", "chief.admin@hospital.example")
    assert refused.exit_code == 1
    assert "run `carepath db upgrade`" in refused.output
    with sqlite3.connect(tmp_path / "store.db") as database:
        assert database.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_create_admin_prints_a_one_time_password_once(tmp_path):
    assert run(tmp_path, command=("db", "upgrade")).exit_code == 0
    created = run(tmp_path, "--email", "Chief.Admin@Hospital.example", "--name", "Chief administrator")
    assert created.exit_code == 0, created.output
    assert "administrator chief.admin@hospital.example created" in created.output
    password = created.output.strip().splitlines()[-1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{20}", password)

    again = run(tmp_path, "--email", "chief.admin@hospital.example")
    assert again.exit_code == 1
    assert "an account with the email chief.admin@hospital.example exists" in again.output
    assert password not in again.output


def test_create_admin_refuses_weak_production_settings(tmp_path):
    result = CliRunner().invoke(app, ["users", "create-admin", "--email", "a@b.example"],
                                env={"CAREPATH_ENVIRONMENT": "production", "CAREPATH_SECRET_KEY": "short",
                                     "CAREPATH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"})
    assert result.exit_code != 0 and not (tmp_path / "store.db").exists()
