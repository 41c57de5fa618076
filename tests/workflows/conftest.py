import pytest

from tools.simulation import local_stack, time_skipping_environment


@pytest.fixture
async def time_skipping():
    """A time-skipping server per test: escalations outlive their pathway, and a workflow left
    waiting from one test would hold the next test's clock still."""
    async with time_skipping_environment() as environment:
        yield environment


@pytest.fixture
async def stack(time_skipping, tmp_path, database_url):
    """The worker's activities on a migrated database of each kind."""
    async with local_stack(time_skipping.client, tmp_path, database_url=database_url) as stack:
        yield stack
