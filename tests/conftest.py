import os
from pathlib import Path

import pytest

from language.instruments.model import Instrument
from services.settings import PROJECT_ROOT
from services.site import load_instruments

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
