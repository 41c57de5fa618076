import pytest

from carepath.simulation import local_stack, time_skipping_environment


@pytest.fixture(scope="session")
async def time_skipping():
    """One time-skipping server for the session; its clock is shared, so tests run one at a time."""
    async with time_skipping_environment() as environment:
        yield environment


@pytest.fixture
async def stack(time_skipping, tmp_path):
    async with local_stack(time_skipping.client, tmp_path) as stack:
        yield stack
