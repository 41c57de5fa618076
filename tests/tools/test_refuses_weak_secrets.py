"""A production process started with a missing, published or short secret stops at once, saying why
in one line, before it touches the database or Temporal."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from services.settings import DEVELOPMENT_SECRET, PROJECT_ROOT

API = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--port", "0"]
WORKER = [sys.executable, "-m", "worker.main"]


def start(command: list[str], **variables: str) -> subprocess.CompletedProcess:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("CAREPATH_")}
    # Nowhere to connect to: a process that got past its settings would hang or fail differently.
    environment |= {"CAREPATH_TEMPORAL_ADDRESS": "127.0.0.1:9",
                    "CAREPATH_DATABASE_URL": "sqlite+aiosqlite:////nonexistent/x.db"}
    return subprocess.run(command, cwd=PROJECT_ROOT, env=environment | variables, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("command", [API, WORKER], ids=["api", "worker"])
@pytest.mark.parametrize(("secret", "because"), [
    (None, "CAREPATH_SECRET_KEY is not set"),
    (DEVELOPMENT_SECRET, "CAREPATH_SECRET_KEY is the published development secret; set a private one"),
    ("short-but-private", "CAREPATH_SECRET_KEY is 17 characters; use at least 32"),
], ids=["missing", "published", "short"])
def test_production_refuses_a_weak_secret_in_one_line(command: list[str], secret: str | None, because: str):
    variables = {"CAREPATH_ENVIRONMENT": "production"} | ({"CAREPATH_SECRET_KEY": secret} if secret else {})
    finished = start(command, **variables)
    assert finished.returncode != 0
    [line] = finished.stderr.strip().splitlines()  # no traceback
    assert line.startswith("carepath: refusing to start: ") and because in line, finished.stderr


def test_an_unset_environment_is_production():
    finished = start(WORKER)
    assert finished.returncode != 0 and "CAREPATH_SECRET_KEY is not set" in finished.stderr
