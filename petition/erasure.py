"""Erasing so that the bytes are gone: what a withdrawal, an organiser's erasure or the purge removes must
leave no copy in the database's files (journals and free pages included) nor in the outbox folder.

An erasing transaction calls ``mark`` before it commits; ``settle`` after the commit; ``compact`` rewrites
what still holds erased bytes.

SQLite zeroes what is deleted (``secure_delete``, see ``extensions``); the older copies of those pages in the
WAL go when it is checkpointed and truncated. PostgreSQL leaves deleted rows in its table and index files and
in its WAL segments: ``VACUUM FULL`` writes the tables and their indexes anew, and after a switch to a new WAL
segment a checkpoint removes the old ones (unlinked, not recycled, with ``wal_recycle = off``). That takes an
exclusive lock on the tables, so it runs in the background sender, never in a visitor's request; and it waits
until no open transaction may still read an erased row (VACUUM FULL would copy it).
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from pathlib import Path

from flask import current_app
from sqlalchemy import delete, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from . import connections, mail, outbox
from .extensions import db
from .models import CompactionDue, OutboxMessage, Signature, Submission

log = logging.getLogger(__name__)

# The tables that hold signers' answers.
TABLES = (Submission.__tablename__, Signature.__tablename__, OutboxMessage.__tablename__)
# A checkpoint that cannot truncate the WAL (a reader is on it) is tried again shortly, and failing that left
# to the sender's next round: in a visitor's request for some tens of milliseconds at most.
SETTLE_TRIES, SETTLE_WAIT_MS = 3, 10
COMPACT_TRIES, COMPACT_WAIT_MS = 5, 200
RETRY_SECONDS = 0.05
# VACUUM FULL waits no longer than this for its lock: every query on the table queues behind a waiting one.
LOCK_TIMEOUT = "2s"
LOCK_NOT_AVAILABLE, INSUFFICIENT_PRIVILEGE = "55P03", "42501"
OUTBOX_QUERY_BATCH = 500

_warned: set[str] = set()


def mark() -> None:
    """In the erasing transaction: the files must be compacted once it has committed."""
    db.session.add(CompactionDue())


def settle() -> None:
    """After the erasing commit: compact now where that is cheap, else leave it to the background sender."""
    if db.engine.dialect.name == "sqlite":
        _checkpoint(db.engine, SETTLE_TRIES, SETTLE_WAIT_MS, queue=False)
    outbox.wake_sender()


def due() -> bool:
    """Whether an erasure waits for its compaction."""
    found = db.session.scalar(select(CompactionDue.id).limit(1)) is not None
    db.session.commit()  # no snapshot left open while the sender sleeps
    return found


def compact(vacuum: bool = False) -> bool:
    """Remove the outbox files of erased rows and rewrite the database's files so that they hold nothing
    erased; then clear the compactions that were due. ``vacuum`` (the purge): look at the outbox files even
    when no compaction is due, and VACUUM SQLite, so that neither its free pages nor the file's length keep
    anything (PostgreSQL's tables are rewritten only when an erasure is due: that locks them).

    Return False when the database was too busy: a compaction stays due, for the sender's next round."""
    # The ids seen, not the highest: on PostgreSQL a lower id can commit later, after the rewrite began.
    covered = db.session.scalars(select(CompactionDue.id)).all()
    db.session.commit()  # no snapshot of ours may hold the WAL, nor a lock that VACUUM FULL waits for
    if not covered and not vacuum:
        return True
    removed = remove_outbox_files()
    engine = db.engine
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        done = _compact_sqlite(engine, vacuum)
    else:
        done = not covered or _compact_postgresql(engine, covered)
    if done and covered:
        with connections.writer_turn(engine):
            db.session.execute(delete(CompactionDue).where(CompactionDue.id.in_(covered)))
            db.session.commit()
        if sqlite:  # that delete holds nothing erased; truncating again only keeps the WAL small
            _checkpoint(engine, 1, 0, queue=False)
    elif not done and not covered:
        with connections.writer_turn(engine):
            mark()
            db.session.commit()
    log.info("compaction %s; %d outbox files removed", "done" if done else "postponed (database busy)", removed)
    return done


def remove_outbox_files() -> int:
    """Remove the ``.eml`` files whose outbox row is gone (its submission or signature erased, or confirmed)
    or belongs to a purged signature; return how many."""
    folder = current_app.config.get("OUTBOX_DIR")
    found = mail.FileTransport.written(folder) if folder and Path(folder).is_dir() else []
    if not found:
        return 0
    ids = sorted({outbox_id for _, outbox_id, _ in found})
    rows = {}
    for start in range(0, len(ids), OUTBOX_QUERY_BATCH):
        rows.update((outbox_id, (created, purged)) for outbox_id, created, purged in db.session.execute(
            select(OutboxMessage.id, OutboxMessage.created_at, Signature.purged_at)
            .outerjoin(Signature, OutboxMessage.signature_id == Signature.id)
            .where(OutboxMessage.id.in_(ids[start:start + OUTBOX_QUERY_BATCH]))))
    db.session.commit()
    removed = 0
    for path, outbox_id, written in found:
        row = rows.get(outbox_id)
        # SQLite may give a deleted row's id to a new one: a row made after the file was written is not its.
        if row is None or written < row[0] or row[1] is not None:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _autocommit(engine: Engine) -> Connection:
    """A connection outside any transaction: VACUUM and a WAL checkpoint cannot run inside one."""
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _checkpoint(engine: Engine, tries: int, wait_ms: int, queue: bool) -> bool:
    """Copy the WAL into the database file and truncate it to nothing; False if readers kept it busy."""
    for attempt in range(tries):
        if attempt:
            time.sleep(RETRY_SECONDS)
        try:
            with connections.writer_turn(engine) if queue else nullcontext(), _autocommit(engine) as connection:
                timeout = int(connection.exec_driver_sql("PRAGMA busy_timeout").scalar())
                connection.exec_driver_sql(f"PRAGMA busy_timeout={wait_ms}")  # not the writers' whole wait
                try:
                    busy = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()[0]
                except DBAPIError:  # locked by a writer of another process
                    busy = 1
                finally:
                    connection.exec_driver_sql(f"PRAGMA busy_timeout={timeout}")
        except connections.DatabaseBusy:  # the writers' queue stayed taken: the sender tries again later
            busy = 1
        if not busy:
            return True
    return False


def _compact_sqlite(engine: Engine, vacuum: bool) -> bool:
    if vacuum:
        try:
            with connections.writer_turn(engine), _autocommit(engine) as connection:
                connection.exec_driver_sql("VACUUM")
        except (DBAPIError, connections.DatabaseBusy) as error:
            log.warning("VACUUM postponed: %s", type(getattr(error, "orig", error)).__name__)
            return False
    return _checkpoint(engine, COMPACT_TRIES, COMPACT_WAIT_MS, queue=True)


def _compact_postgresql(engine: Engine, covered: list[int]) -> bool:
    with _autocommit(engine) as connection:
        if _older_snapshot(connection, covered):
            log.info("compaction postponed: a transaction that may still see erased rows is open")
            return False
        if _may_vacuum(connection):
            connection.exec_driver_sql(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            try:
                connection.exec_driver_sql(f"VACUUM FULL {', '.join(TABLES)}")
            except DBAPIError as error:
                if _sqlstate(error) != LOCK_NOT_AVAILABLE:
                    raise
                log.warning("compaction postponed: the tables were busy for %s", LOCK_TIMEOUT)
                return False
            finally:
                connection.exec_driver_sql("RESET lock_timeout")
        else:
            _warn_once("vacuum", "erased rows stay in the table files: the database role does not own the "
                                 "tables %s, so it may not VACUUM FULL them", ", ".join(TABLES))
        # The segments written so far hold the erased rows as they were inserted: close the current one, and
        # the checkpoint removes them all.
        for statement in ("SELECT pg_switch_wal()", "CHECKPOINT"):
            try:
                connection.exec_driver_sql(statement)
            except DBAPIError as error:
                if _sqlstate(error) != INSUFFICIENT_PRIVILEGE:
                    raise
                _warn_once("wal", "erased rows stay in WAL segments until the server's next checkpoint: the "
                                  "database role may not run pg_switch_wal() and CHECKPOINT (grant EXECUTE on "
                                  "pg_switch_wal() and the role pg_checkpoint)")
                break
    return True


def _older_snapshot(connection: Connection, covered: list[int]) -> bool:
    """Whether another session of this database holds a snapshot taken before an erasure committed: VACUUM FULL
    copies the rows such a snapshot may still read, erased or not. (A row's xmin is the transaction that
    wrote it, here the erasing one.)"""
    return bool(connection.execute(text(
        "SELECT EXISTS (SELECT FROM pg_stat_activity a, compaction_due c "
        "WHERE c.id = ANY(:covered) AND a.datname = current_database() AND a.pid <> pg_backend_pid() "
        "AND a.backend_xmin IS NOT NULL AND age(a.backend_xmin) >= age(c.xmin))"), {"covered": covered}).scalar())


def _may_vacuum(connection: Connection) -> bool:
    """VACUUM FULL of a table that the role may not maintain only warns and does nothing."""
    relations = ", ".join(f"'{table}'::regclass" for table in TABLES)
    right = ("has_table_privilege(oid, 'MAINTAIN')" if connection.dialect.server_version_info >= (17,)
             else "pg_has_role(relowner, 'USAGE')")
    return bool(connection.exec_driver_sql(
        f"SELECT bool_and({right}) FROM pg_class WHERE oid IN ({relations})").scalar())


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


def _warn_once(key: str, message: str, *args) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)
