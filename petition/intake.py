"""The intake of submissions: what a sign form's POST writes, and what the background sender decides later.

Every valid POST appends one row in one statement and nothing else, whoever sends it: a new signer, a repeat,
a held or an over-cap one do the same work and get the same answer, so neither the page nor its timing tells
anyone who has signed. What differs is decided after the answer, by ``decide`` in the sender: which e-mail
the submission's owner gets, if any under the cap. Confirming is ``signing``'s.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from . import mail
from .extensions import db
from .models import OutboxMessage, Petition, Signature, Submission, utcnow

# The app factory binds this key to an engine of autocommit connections to the same database: one INSERT is
# atomic by itself, so the write is one round trip, with no BEGIN and COMMIT around it.
AUTOCOMMIT = "autocommit"
NEW_SUBMISSION = insert(Submission)
BATCH = 200


@dataclass(frozen=True)
class Answers:
    """What a signer typed, validated and normalised by the form."""

    name: str
    email: str
    email_canonical: str
    mailbox: str
    country: str
    postcode: str = ""
    comment: str = ""
    public: bool = False
    updates: bool = False


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


def record(petition: Petition, answers: Answers, held: bool, ip_hash: str | None) -> None:
    """Append one submission. Answers nothing on purpose: the caller says the same to everyone."""
    row = {**vars(answers), "petition_id": petition.id, "held": held, "ip_hash": ip_hash}  # flat: no deep copy
    # A petition looked up afresh began a read: end it, the write runs on a connection of its own.
    if db.session.registry.has() and db.session().in_transaction():
        db.session.commit()
    engine = db.engines[AUTOCOMMIT]
    try:
        _write(engine, row)
    except DBAPIError as error:
        # A pooled connection that the database dropped in the last second (they are checked only after being
        # idle: see connections). SQLAlchemy has discarded it and all older ones: write once more.
        if not error.connection_invalidated:
            raise
        _write(engine, row)
    mail.wake_sender()


def _write(engine: Engine, row: dict) -> None:
    if engine.dialect.name == "sqlite":
        with _sqlite_writer(engine.url.database), engine.connect() as connection:
            connection.execute(NEW_SUBMISSION, row)
    else:
        with engine.connect() as connection:
            connection.execute(NEW_SUBMISSION, row)


def decide(limit: int = BATCH) -> int:
    """Decide the submissions not decided yet, oldest first, and queue the e-mail each warrants; return how
    many. Call inside an app context. Several senders may run: on PostgreSQL they take turns on a lock
    held to the end of the transaction, so the cap is counted by one of them at a time; SQLite has one
    writer at a time anyway."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('petition intake'))"))
    # The cap is counted per sender address first, so that someone who posts a stranger's address a few
    # times cannot use up the owner's own link; and for all senders together, so that no mailbox is flooded.
    pending = db.session.scalars(select(Submission).where(Submission.decided_at.is_(None))
                                 .order_by(Submission.id).limit(limit)).all()
    config = current_app.config
    for submission in pending:
        now = utcnow()
        submission.decided_at = now
        if not submission.petition.is_open:
            continue  # closed meanwhile: its link would only lead to the closed page
        since = now - timedelta(hours=config["MAIL_CAP_HOURS"])
        mailed = (select(func.count()).where(Submission.petition_id == submission.petition_id,
                                             Submission.mailbox == submission.mailbox, Submission.mailed_at >= since))
        if (db.session.scalar(mailed.where(Submission.ip_hash == submission.ip_hash)) >= config["MAILS_PER_MAILBOX"]
                or db.session.scalar(mailed) >= config["MAILS_PER_MAILBOX_IN_ALL"]):
            continue  # kept, not mailed: the mailbox has had its share of messages for now
        signed = db.session.scalar(select(Signature.id).where(
            Signature.petition_id == submission.petition_id,
            Signature.email_canonical == submission.email_canonical))
        submission.mailed_at = now
        db.session.add(OutboxMessage(submission=submission,
                                     kind=mail.ALREADY_SIGNED if signed is not None else mail.CONFIRM))
        db.session.flush()  # the next submission of the same mailbox counts this one
    db.session.commit()
    return len(pending)
