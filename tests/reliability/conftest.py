"""The same stack as the end-to-end tests (tests/e2e/conftest.py): Temporal's dev server, the API under
uvicorn and a worker, real processes on loopback."""

from tests.e2e.conftest import smtp_inbox, stack, temporal_server  # noqa: F401  (fixtures, used by name)
