"""Online backups of the embedded SQLite database (PostgreSQL has pg_dump: see README, Operations).

SQLite's backup API copies a consistent snapshot while the service keeps running and writing; a restore
copies a checked backup back the same way, so readers never see a half-written database. A backup holds
personal data: it is written readable by its owner only.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from . import files
from .extensions import db

REQUIRED_TABLES = {"petition", "signature", "outbox", "alembic_version"}


class BackupError(RuntimeError):
    """The backup or restore cannot be done; the message says why."""


def _live_path() -> Path:
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or not url.database:
        raise BackupError("petition backup and restore work on SQLite; for PostgreSQL use pg_dump and "
                          "pg_restore (README, Operations)")
    return Path(url.database)


def backup(target: Path) -> int:
    """Write a consistent copy of the live database to ``target``; return its number of signatures."""
    source = _live_path()
    try:
        os.close(files.create_private(target))  # 0600 before SQLite writes a byte into it
    except FileExistsError:
        raise BackupError(f"{target} exists already; choose a new file name") from None
    with sqlite3.connect(source) as live, sqlite3.connect(target) as copy:
        live.backup(copy)
        return copy.execute("SELECT count(*) FROM signature").fetchone()[0]


def check(path: Path) -> int:
    """Refuse anything that is not a backup of this service; return its number of signatures."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as candidate:
            if candidate.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError(f"{path} is damaged (integrity check failed)")
            tables = {row[0] for row in candidate.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not REQUIRED_TABLES <= tables:
                raise BackupError(f"{path} is not a backup of the petition service")
            return candidate.execute("SELECT count(*) FROM signature").fetchone()[0]
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} is not an SQLite database ({error})") from None


def restore(source: Path) -> int:
    """Replace the live database with a checked backup; return the signatures restored."""
    if not source.is_file():
        raise BackupError(f"{source} not found")
    signatures = check(source)
    live_path = _live_path()
    db.engine.dispose()  # our own pooled connections must not hold the old pages
    with sqlite3.connect(source) as backup_db, sqlite3.connect(live_path) as live:
        backup_db.backup(live)
    return signatures
