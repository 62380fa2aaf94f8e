"""Pooled database connections, checked before use only when they have been idle; SQLite's writers' queue.

SQLAlchemy's ``pool_pre_ping`` checks a connection on every checkout: a round trip to the database before
each signature under load, when every connection was in use a moment ago. Here a connection is pinged only
after ``PING_AFTER_IDLE_SECONDS`` unused, which is when a server restart or an idle timeout can have dropped
it (HikariCP skips its check the same way for connections used in the last half second). One dropped within
that second fails its statement instead: SQLAlchemy then discards it and every older one, and the signing
write, the one that must not be lost, tries once more on a new connection.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidatePoolError

PING_AFTER_IDLE_SECONDS = 1.0
LAST_USED = "petition.last-used"  # in each connection record's info: monotonic time of its last checkin


def ping_when_idle(engine: Engine) -> None:
    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    def _connected(dbapi_connection, record) -> None:
        record.info[LAST_USED] = time.monotonic()  # a new connection needs no check

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record) -> None:
        if dbapi_connection is not None:  # None when it was invalidated
            record.info[LAST_USED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy) -> None:
        if time.monotonic() - record.info.get(LAST_USED, 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # The pool replaces this connection, and all older ones, and runs this check again.
                raise InvalidatePoolError("the database dropped this idle connection") from error
            raise


# SQLite takes one writer at a time, and a writer that finds the lock taken sleeps in steps of up to 100 ms, so
# a busy writer (the sender) can take the lock again and again before a sleeping one (a signer's post) wakes.
# Writers of all processes queue on a lock file of their own instead, and each goes the moment the last one
# is done. (A thread lock first: flock is shared by the threads of a process.)
_THREADS = threading.Lock()
_LOCK_FILES: dict[tuple[int, str], int] = {}


@contextmanager
def writer_turn(engine: Engine) -> Iterator[None]:
    """Around a write transaction: on SQLite, wait for this database's writers' queue; elsewhere nothing."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with _THREADS:
        key = (os.getpid(), database)  # a descriptor inherited across fork would share its lock
        if key not in _LOCK_FILES:
            _LOCK_FILES[key] = os.open(f"{database}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(_LOCK_FILES[key], fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(_LOCK_FILES[key], fcntl.LOCK_UN)
