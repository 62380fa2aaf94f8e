"""Signing, confirming and withdrawing: the only code that writes signatures.

A signing request inserts one signature row and one outbox row in one transaction (on PostgreSQL in one
statement) and touches nothing shared, so signers never wait on each other. The unique index on (petition,
canonical e-mail) decides duplicates, even for simultaneous submissions; a repeat signer gets the same answer
as a new one and only the mailbox owner learns, by e-mail, that the address had signed already.
"""

from __future__ import annotations

import fcntl
import functools
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import bindparam, insert, literal, select, update
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from . import mail
from .extensions import db
from .models import CONFIRMED, HELD, PENDING, OutboxMessage, Petition, Signature, utcnow

_SIGNATURE = Signature.__table__
_OUTBOX = OutboxMessage.__table__
# The signature as the signing write inserts it: every column a bound value but those filled in later.
_NEW_SIGNATURE = (insert(_SIGNATURE)
                  .values({column.name: bindparam(column.name, type_=column.type) for column in _SIGNATURE.columns
                           if column.name not in ("id", "confirmed_at", "purged_at")}))
NEW_SIGNATURE = _NEW_SIGNATURE.returning(_SIGNATURE.c.id)
NEW_MAIL = insert(_OUTBOX).values(
    signature_id=bindparam("signature_id", type_=_OUTBOX.c.signature_id.type), kind=literal(mail.CONFIRM),
    created_at=bindparam("created_at", type_=_OUTBOX.c.created_at.type),
    next_attempt_at=bindparam("created_at", type_=_OUTBOX.c.next_attempt_at.type), attempts=literal(0))
# PostgreSQL takes both rows in one statement, atomic on its own in autocommit: one round trip to the
# database instead of four (BEGIN, two INSERTs, COMMIT). The app factory binds this key to an engine of
# autocommit connections to the same database.
AUTOCOMMIT = "autocommit"
_NEW = _NEW_SIGNATURE.returning(_SIGNATURE.c.id, _SIGNATURE.c.created_at).cte("new_signature")
SIGN_AND_QUEUE = insert(_OUTBOX).from_select(
    ["signature_id", "kind", "created_at", "next_attempt_at", "attempts"],
    select(_NEW.c.id, literal(mail.CONFIRM), _NEW.c.created_at, _NEW.c.created_at, literal(0)))


@dataclass(frozen=True)
class _DriverStatement:
    sql: str
    literals: dict  # the statement's own values, by parameter name
    order: tuple | None  # parameter names in order, for a driver that takes them by position (SQLite's)
    processors: dict  # parameter name -> the dialect's conversion of its value (SQLite's text timestamps)

    def parameters(self, values: dict) -> dict | tuple:
        """``values`` and the statement's literals, converted, in the form the driver takes them."""
        values = {**self.literals, **values}
        for name, process in self.processors.items():
            values[name] = process(values[name])
        return values if self.order is None else tuple(values[name] for name in self.order)


@functools.cache
def _for_driver(statement, dialect: Dialect) -> _DriverStatement:
    """A statement of the signing write as the driver's SQL, compiled once per dialect. Run with
    ``exec_driver_sql``, no cache key is built and only the values that need it are converted: about a third
    less of the worker's CPU time for each statement, on the request every signer makes."""
    compiled = statement.compile(dialect=dialect)
    literals, processors = {}, {}
    for bind in compiled.binds.values():
        name = compiled.bind_names[bind]  # the parameter's name in the SQL (a literal's key is anonymous)
        if bind.value is not None:
            literals[name] = bind.value
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process
    order = tuple(compiled.positiontup) if compiled.positional else None
    return _DriverStatement(compiled.string, literals, order, processors)


def _execute(connection, statement, values: dict):
    """Run one of the module's statements with ``values``, as SQLAlchemy would, minus its per-call work."""
    prepared = _for_driver(statement, connection.dialect)
    return connection.exec_driver_sql(prepared.sql, prepared.parameters(values))


@dataclass(frozen=True)
class Submission:
    """A signer's answers, already validated and normalised by the form."""

    name: str
    email: str
    email_canonical: str
    country: str
    postcode: str = ""
    comment: str = ""
    public: bool = False
    updates: bool = False
    ip_hash: str | None = None
    held: bool = False  # over the soft limit, or a bot's: stored for review, not counted, no e-mail


# SQLite takes one writer at a time, and a writer that finds the lock taken sleeps in steps of up to
# 100 ms. Queuing the writers of all processes on a lock file of our own lets each go the moment the
# last one commits. (A thread lock first: flock is shared by the threads of a process.)
_THREADS = threading.Lock()
_LOCK_FILES: dict[tuple[int, str], int] = {}


@contextmanager
def _sqlite_writer(database: str | None) -> Iterator[None]:
    with _THREADS:
        if not database or database == ":memory:":
            yield
            return
        key = (os.getpid(), database)  # a descriptor inherited across fork would share its lock
        if key not in _LOCK_FILES:
            _LOCK_FILES[key] = os.open(f"{database}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(_LOCK_FILES[key], fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(_LOCK_FILES[key], fcntl.LOCK_UN)


def sign(petition: Petition, submission: Submission) -> None:
    """Record a signature (or a repeat) and queue the e-mail it warrants; answers nothing on purpose."""
    fields = dict(vars(submission))  # flat values: dataclasses.asdict would deep-copy each one
    held = fields.pop("held")
    now = utcnow()
    row = {**fields, "petition_id": petition.id, "status": HELD if held else PENDING,
           "mails_sent": 0 if held else 1, "created_at": now, "nonce": secrets.token_hex(8)}
    engine = db.engine
    # A petition looked up afresh began a read: end it, this write is a transaction of its own. (Asked
    # without making a session: on the usual request, petition cached, there is none to make or close.)
    if db.session.registry.has() and db.session().in_transaction():
        db.session.commit()
    try:
        try:
            _write(engine, row, held)
        except DBAPIError as error:
            # A pooled connection that the database dropped in the last second (they are checked only after
            # being idle: see connections). SQLAlchemy has discarded it and all older ones: write once more.
            if isinstance(error, IntegrityError) or not error.connection_invalidated:
                raise
            _write(engine, row, held)
    except IntegrityError:  # the connection rolled its own transaction back
        if not held:
            _repeat(row["petition_id"], submission.email_canonical)
        return
    if not held:
        mail.wake_sender()


def _write(engine: Engine, row: dict, held: bool) -> None:
    """The signature and, unless held, its confirmation mail, in one transaction, on a pool connection of
    their own: no session, no unit of work, on the request every signer makes."""
    if engine.dialect.name == "postgresql":
        with db.engines[AUTOCOMMIT].connect() as connection:
            _execute(connection, NEW_SIGNATURE if held else SIGN_AND_QUEUE, row)
        return
    # On SQLite, straight on the pooled connection's cursor: SQLAlchemy's execution context around the two
    # inserts was a third of the write's CPU time.
    with _sqlite_writer(engine.url.database):
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            signature = _for_driver(NEW_SIGNATURE, engine.dialect)
            cursor.execute(signature.sql, signature.parameters(row))
            signature_id = cursor.fetchall()[0][0]  # all of it: a statement left running would hold the write
            if not held:
                mail_row = _for_driver(NEW_MAIL, engine.dialect)
                cursor.execute(mail_row.sql, mail_row.parameters(
                    {"signature_id": signature_id, "created_at": row["created_at"]}))
            connection.commit()
        except engine.dialect.loaded_dbapi.Error as error:
            connection.rollback()
            # As SQLAlchemy would raise it: IntegrityError for a repeat, OperationalError for a locked database.
            raise DBAPIError.instance(None, None, error, engine.dialect.loaded_dbapi.Error) from error
        finally:
            connection.close()  # back to the pool


def _repeat(petition_id: int, email_canonical: str) -> None:
    """A second submission from a mailbox: resend the link, or say it has signed, within the mail cap."""
    cap = current_app.config["MAILS_PER_SIGNATURE"]
    # One conditional UPDATE: concurrent repeats cannot together exceed the cap.
    row = db.session.execute(
        update(Signature)
        .where(
            Signature.petition_id == petition_id,
            Signature.email_canonical == email_canonical,
            Signature.mails_sent < cap,
        )
        .values(mails_sent=Signature.mails_sent + 1)
        .returning(Signature.id, Signature.status)
    ).first()
    if row is None:  # cap reached, or the first signature was withdrawn meanwhile
        db.session.rollback()
        return
    if row.status == HELD:  # waiting for an organiser: no mail until accepted
        db.session.rollback()
        return
    kind = mail.CONFIRM if row.status == PENDING else mail.ALREADY_SIGNED
    db.session.add(OutboxMessage(signature_id=row.id, kind=kind))
    db.session.commit()
    mail.wake_sender()


def confirm(signature: Signature) -> bool:
    """Count a pending signature; False if it was already confirmed (confirming twice is harmless)."""
    result = db.session.execute(
        update(Signature)
        .where(Signature.id == signature.id, Signature.status == PENDING)
        .values(status=CONFIRMED, confirmed_at=utcnow())
    )
    db.session.commit()
    return result.rowcount == 1


def withdraw(signature: Signature) -> None:
    """Delete the signature and everything queued for it: withdrawn means gone."""
    db.session.delete(signature)
    db.session.commit()
