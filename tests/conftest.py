import os

import pytest

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
