"""Modes of the files the service writes: personal data is readable by the service's own user only.

Folders are 0700 and files 0600, whatever the umask. Installs made before this are tightened at start.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

FOLDER = 0o700
FILE = 0o600
# SQLite's companions of a database file (-wal and -shm take the database file's mode when SQLite creates them)
# and the writers' queue of ``connections``.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal", "-writer.lock")


def tighten(path: Path, mode: int) -> None:
    """Give an existing file or folder ``mode``, if it has a looser one."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & ~mode:
            path.chmod(current & mode)
    except FileNotFoundError:
        pass
    except PermissionError:  # not ours: say so rather than refuse to start
        log.warning("cannot restrict the mode of %s (not owned by this user)", path)


def private_folder(path: Path) -> Path:
    """Create ``path`` 0700 (its parents as the umask says), or tighten it."""
    path.mkdir(mode=FOLDER, parents=True, exist_ok=True)
    tighten(path, FOLDER)
    return path


def create_private(path: Path) -> int:
    """Open ``path`` for writing, new and 0600; raise FileExistsError if it is there."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE)


def sqlite_file(uri: str) -> Path | None:
    """The database file of an SQLite URL, None for PostgreSQL or an in-memory database."""
    url = make_url(uri)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:" \
            or url.query.get("uri") or url.database.startswith("file:"):
        return None
    return Path(url.database)


def private_sqlite(uri: str) -> None:
    """Create the SQLite database file 0600 before SQLite would create it by the umask, or tighten it and
    its companions."""
    path = sqlite_file(uri)
    if path is None or not path.parent.is_dir():
        return
    try:
        os.close(create_private(path))  # an empty file is an empty SQLite database
    except FileExistsError:
        pass
    for name in ("", *SQLITE_COMPANIONS):
        tighten(path.with_name(path.name + name), FILE)


def private_outbox(folder: Path) -> None:
    """An existing outbox folder and its files, tightened."""
    if not folder.is_dir():
        return
    tighten(folder, FOLDER)
    for path in folder.glob("*.eml"):
        tighten(path, FILE)
