"""The Flask extensions, created unbound so that every module can import them without the app."""

import sqlite3
from pathlib import Path

from flask import Flask
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


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
