"""Pooled database connections, checked before use only when they have been idle; SQLite's writers' queue;
an end to every wait for the database.

SQLAlchemy's ``pool_pre_ping`` checks a connection on every checkout: a round trip to the database before
each signature under load, when every connection was in use a moment ago. Here a connection is pinged only
after ``PING_AFTER_IDLE_SECONDS`` unused, which is when a server restart or an idle timeout can have dropped
it (HikariCP skips its check the same way for connections used in the last half second). One dropped within
that second fails its statement instead: SQLAlchemy then discards it and every older one, and the signing
write, the one that must not be lost, tries once more on a new connection.
"""

from __future__ import annotations

import fcntl
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app, has_request_context
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
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


# ---------------------------------------------------------------- an end to every wait

# A request that waits longer than gunicorn's worker timeout is killed with its worker, and every other
# request of that worker with it: so each wait for the database ends after PETITION_DB_WAIT_SECONDS, and the
# request answers 503 (errors). A background writer (the mail sender, a command) has no one waiting for it
# and a round that fails is done again, so it waits longer, but not for ever either.
BACKGROUND_WAIT_SECONDS = 120.0


class DatabaseBusy(Exception):
    """A writer's turn on the database did not come within its wait: answered as a busy database is."""


def bound_waits(uri: str, options: dict[str, Any], seconds: float) -> None:
    """Fill in engine options under which every wait for the database ends after ``seconds``: SQLite's busy
    timeout, PostgreSQL's connect and lock timeouts, and the wait for a pooled connection. What the URL or
    the given options say already is kept."""
    url = make_url(uri)
    connect_args = options.setdefault("connect_args", {})
    if url.get_backend_name() == "sqlite":
        connect_args.setdefault("timeout", seconds)  # how long a writer sleeps on SQLite's lock
        if url.database in (None, "", ":memory:"):
            return  # one shared connection (StaticPool), never waited for
    elif url.get_backend_name() == "postgresql":
        given = {**url.query, **connect_args}  # the driver's own keywords, from either place
        if "connect_timeout" not in given:  # a host that drops packets: libpq would wait for TCP's minutes
            connect_args["connect_timeout"] = max(2, math.ceil(seconds))  # whole seconds, 2 at least
        if "tcp_user_timeout" not in given:
            # A server whose packets are dropped (a network cut, a host gone): the statement fails once what
            # was sent has gone unacknowledged this long, instead of after TCP's quarter of an hour.
            connect_args["tcp_user_timeout"] = math.ceil(seconds * 1000)
        if "options" not in given:
            # A row or table another transaction holds. No statement_timeout: exports, the purge and VACUUM
            # run long statements on purpose, and a request's statements are short and take no lock to wait for.
            connect_args["options"] = f"-c lock_timeout={math.ceil(seconds * 1000)}"
    options.setdefault("pool_timeout", seconds)


def _default_wait() -> float:
    if has_request_context():
        return float(current_app.config["DB_WAIT_SECONDS"])
    return BACKGROUND_WAIT_SECONDS


# ---------------------------------------------------------------- SQLite's writers' queue

# SQLite takes one writer at a time, and a writer that finds the lock taken sleeps in steps of up to 100 ms, so
# a busy writer (the sender) can take the lock again and again before a sleeping one (a signer's post) wakes.
# Writers of all processes queue on a lock file of their own instead, and each goes the moment the last one
# is done.
_QUEUES: dict[tuple[int, str], _Queue] = {}
_QUEUES_MADE = threading.Lock()


@contextmanager
def writer_turn(engine: Engine, wait: float | None = None) -> Iterator[None]:
    """Around a write transaction: on SQLite, wait for this database's writers' queue, ``wait`` seconds at
    most (by default PETITION_DB_WAIT_SECONDS in a request, ``BACKGROUND_WAIT_SECONDS`` outside one), else
    raise ``DatabaseBusy``; elsewhere nothing."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    started = time.monotonic()
    queue = _queue(database)
    descriptor = queue.take(lambda: started + (_default_wait() if wait is None else wait))
    try:
        yield
    finally:
        queue.give_back(descriptor)


def _queue(database: str) -> _Queue:
    key = (os.getpid(), database)  # a descriptor inherited across fork would share its lock
    queue = _QUEUES.get(key)
    if queue is None:
        with _QUEUES_MADE:
            queue = _QUEUES.get(key) or _QUEUES.setdefault(key, _Queue(f"{database}-writer.lock"))
    return queue


class _Queue:
    """One process's place in a database's writers' queue.

    The threads of the process take turns on a thread lock first (flock is shared by the threads of a
    process); the thread whose turn it is takes the lock file. flock has no timeout, and only the main thread
    could be interrupted by a signal, so when the file is taken a waiter thread, one per process, blocks on
    it instead, on a descriptor of its own (locks of two open files exclude each other, even in one process),
    and hands the lock over the moment it gets it, unless the thread that asked has given up meanwhile: then
    it lets go at once. The uncontended turn is one flock call, as it was without timeouts."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.threads = threading.Lock()
        self.descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.state = threading.Condition()
        self.wanted = False  # the thread whose turn it is waits for the waiter (under state)
        self.handed = False  # the waiter holds the file for that thread (under state)
        self.waiter: threading.Thread | None = None
        self.waiters_descriptor = -1

    def take(self, deadline: Callable[[], float]) -> int:
        """The descriptor on which this thread now holds the lock file; ``deadline()`` is when to give up."""
        if not self.threads.acquire(blocking=False):
            end = deadline()
            if not self.threads.acquire(timeout=max(0.0, end - time.monotonic())):
                raise DatabaseBusy("another writer of this process kept the database")
        try:
            fcntl.flock(self.descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return self.descriptor
        except BlockingIOError:
            pass
        except BaseException:
            self.threads.release()
            raise
        try:
            return self._handed_over(deadline())
        except BaseException:
            self.threads.release()
            raise

    def give_back(self, descriptor: int) -> None:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
        finally:
            self.threads.release()

    def _handed_over(self, end: float) -> int:
        with self.state:
            if self.waiter is None or not self.waiter.is_alive():
                if self.waiters_descriptor < 0:
                    self.waiters_descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self.waiter = threading.Thread(target=self._wait_for_the_file, name="writers-queue", daemon=True)
                self.waiter.start()
            self.wanted = True
            self.state.notify_all()
            handed = self.state.wait_for(lambda: self.handed, timeout=max(0.0, end - time.monotonic()))
            self.wanted = self.handed = False
        if not handed:
            raise DatabaseBusy("another process kept the database's writers' queue")
        return self.waiters_descriptor

    def _wait_for_the_file(self) -> None:
        while True:
            with self.state:
                # Not while the file it handed over is in use: flock on the same open file would return at once.
                self.state.wait_for(lambda: self.wanted and not self.handed)
            fcntl.flock(self.waiters_descriptor, fcntl.LOCK_EX)  # no timeout: this thread is free to wait
            with self.state:
                if self.wanted:
                    self.handed = True
                    self.state.notify_all()
                else:  # given up meanwhile: the next writer, here or in another process, goes
                    fcntl.flock(self.waiters_descriptor, fcntl.LOCK_UN)
