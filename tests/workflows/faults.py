"""Outages for time-skipping tests, made where they happen in production: nothing listening on the SMTP
port, and database connections the driver cannot open. Our own code runs unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool

# Where no database is: a file SQLite cannot open, a socket directory with no PostgreSQL in it.
NOWHERE = "/nonexistent/carepath"


@contextmanager
def smtp_down(stack) -> Iterator[None]:
    """Nothing listens on the SMTP port meanwhile. A stopped aiosmtpd cannot start again: the sink is
    set up anew on the same port for the rest of the test and the fixture's teardown (its earlier
    messages are gone with the old one)."""
    stack.inbox.__exit__(None, None, None)
    try:
        yield
    finally:
        stack.inbox.__init__(port=stack.inbox.port)
        stack.inbox.__enter__()


@contextmanager
def database_down() -> Iterator[None]:
    """Every engine in this process loses its database: a pooled connection is dropped as it is taken
    (as after a server restart), and the driver's new one points where no database is, so it fails."""

    def drop_pooled(_dbapi_connection, _record, _proxy) -> None:
        raise DisconnectionError("the database went away")

    def open_nothing(dialect, _record, cargs, cparams) -> None:
        if dialect.name == "sqlite":
            cargs[0] = f"{NOWHERE}/store.db"
        else:
            cparams["host"] = NOWHERE

    event.listen(Pool, "checkout", drop_pooled)
    event.listen(Engine, "do_connect", open_nothing)
    try:
        yield
    finally:
        event.remove(Engine, "do_connect", open_nothing)
        event.remove(Pool, "checkout", drop_pooled)
