"""The Flask extensions, created unbound so that every module can import them without the app."""

import sqlite3
import threading
import time
from pathlib import Path

from flask import Flask
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from limits.storage import MemoryStorage
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

from . import hashing


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "organisers.login"
login_manager.login_message = "Please log in to see this page."
login_manager.session_protection = "strong"


MIGRATIONS = str(Path(__file__).with_name("migrations"))


def init_migrations(app: Flask) -> None:
    """Set up Flask-Migrate on ``app``, once. Only ``petition db`` and the embedded run's upgrade need it, and
    it imports Alembic: a quarter of a second at the start of every other command and of every worker."""
    if "migrate" not in app.extensions:
        from flask_migrate import Migrate

        Migrate(app, db, directory=MIGRATIONS, render_as_batch=True)


class ThreadSafeMemoryStorage(MemoryStorage):
    """limits' ``memory://`` storage, swept for expired keys in the caller, at most once a ``SWEEP_SECONDS``.

    The library's own starts a timer thread 10 ms after almost every hit to do that sweep: a new thread for
    most signatures under load (a sixth of a worker's time), and two threads could start one timer at once
    ("threads can only be started once", a 500 for a signer; limits 5.8.0). A counter past its expiry is
    reset when it is next read whether swept or not, so the sweep only frees memory. Registered for the
    ``memory`` scheme, this class takes that scheme's place."""

    STORAGE_SCHEME = ["memory"]
    SWEEP_SECONDS = 1.0

    def __init__(self, *args, **kwargs) -> None:
        self._sweeping = threading.Lock()
        self._next_sweep = 0.0
        super().__init__(*args, **kwargs)

    def _MemoryStorage__schedule_expiry(self) -> None:  # the private method the base class calls
        now = time.monotonic()
        if now < self._next_sweep or not self._sweeping.acquire(blocking=False):
            return  # not due, or another thread is sweeping
        try:
            self._next_sweep = now + self.SWEEP_SECONDS
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]
        finally:
            self._sweeping.release()


# Limits are declared where they apply (login, and later signing); storage is set by the app factory.
# Counted by the keyed hash of the client's address, never the address itself.
limiter = Limiter(key_func=hashing.client, default_limits=[])


@event.listens_for(Engine, "connect")
def _tune_sqlite(dbapi_connection, connection_record) -> None:
    """WAL lets readers go on while one writer commits. (Writers queue for the busy timeout that the app
    factory passes as sqlite3's ``timeout``, then fail with a 503 rather than wait for ever.)

    secure_delete zeroes what a delete or update frees, on its page and in free pages, so that erased answers
    leave no bytes behind (``erasure`` then empties the WAL of the older copies); temporary tables, sorts and
    VACUUM's copy stay in memory instead of in temporary files."""
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()
