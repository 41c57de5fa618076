from pathlib import Path

import pytest

from pathways.instrument import INSTRUMENTS_DIR, Instrument, load_instruments


@pytest.fixture(scope="session")
def shipped(tmp_path_factory) -> dict[str, Instrument]:
    """The instruments as committed: no developer's local licensed text merged in."""
    return load_instruments(INSTRUMENTS_DIR, local_dir=tmp_path_factory.mktemp("no-local-text"))


@pytest.fixture
def empty_dir(tmp_path) -> Path:
    return tmp_path
