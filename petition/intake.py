"""The intake of submissions: what a sign form's POST writes, and what the background sender decides later.

Every valid POST appends one row in one statement and nothing else, whoever sends it: a new signer, a repeat,
a held or an over-cap one do the same work and get the same answer, so neither the page nor its timing tells
anyone who has signed. What differs is decided after the answer, by ``decide`` in the sender: which e-mail
the submission's owner gets, if any under the cap. Confirming is ``signing``'s.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from . import connections, mail, outbox
from .extensions import db
from .models import OutboxMessage, Petition, Signature, Submission, utcnow

# The app factory binds this key to an engine of autocommit connections to the same database: one INSERT is
# atomic by itself, so the write is one round trip, with no BEGIN and COMMIT around it.
AUTOCOMMIT = "autocommit"
NEW_SUBMISSION = insert(Submission)
BATCH = 50  # a batch holds SQLite's writers' queue while it is decided: keep it short


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
    outbox.wake_sender()


def _write(engine: Engine, row: dict) -> None:
    # Each wait ends after PETITION_DB_WAIT_SECONDS (connections): the turn, the pooled connection, SQLite's lock.
    with connections.writer_turn(engine), engine.connect() as connection:
        connection.execute(NEW_SUBMISSION, row)


def decide(limit: int = BATCH) -> int:
    """Decide the submissions not decided yet, oldest first, and queue the e-mail each warrants; return how
    many. Call inside an app context.

    One short transaction a batch, with the cap's counts and the signatures it needs read for the whole batch
    at once, so signers' posts never wait long behind it. Several senders may run: on PostgreSQL they take
    turns on a lock held to the end of the transaction, on SQLite in the writers' queue, so the cap is
    counted by one of them at a time. Either turn waits ``connections.BACKGROUND_WAIT_SECONDS`` at most: no one
    waits for the answer, and a round that fails is done again."""
    with connections.writer_turn(db.engine, connections.BACKGROUND_WAIT_SECONDS):
        try:
            decided = _decide(limit)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    return decided


def _decide(limit: int) -> int:
    if db.engine.dialect.name == "postgresql":  # longer than the lock timeout a request has (connections)
        db.session.execute(text("SELECT set_config('lock_timeout', :wait, true)"),
                           {"wait": f"{connections.BACKGROUND_WAIT_SECONDS * 1000:.0f}"})
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('petition intake'))"))
    pending = db.session.scalars(select(Submission).where(Submission.decided_at.is_(None))
                                 .order_by(Submission.id).limit(limit)).all()
    if not pending:
        return 0
    config = current_app.config
    now = utcnow()
    since = now - timedelta(hours=config["MAIL_CAP_HOURS"])
    # The cap is counted per sender address, so that someone who posts a stranger's address a few times
    # cannot use up the owner's own link, and for all senders together, so that no mailbox is flooded.
    by_sender: Counter = Counter()
    in_all: Counter = Counter()
    for petition_id, mailbox, ip_hash, number in db.session.execute(
            select(Submission.petition_id, Submission.mailbox, Submission.ip_hash, func.count())
            .where(Submission.mailbox.in_({s.mailbox for s in pending}), Submission.mailed_at >= since)
            .group_by(Submission.petition_id, Submission.mailbox, Submission.ip_hash)):
        by_sender[petition_id, mailbox, ip_hash] += number
        in_all[petition_id, mailbox] += number
    signed = {(petition_id, canonical) for petition_id, canonical in db.session.execute(
        select(Signature.petition_id, Signature.email_canonical)
        .where(Signature.email_canonical.in_({s.email_canonical for s in pending})))}
    for submission in pending:
        submission.decided_at = now
        if not submission.petition.is_open:
            continue  # closed meanwhile: its link would only lead to the closed page
        mailbox = (submission.petition_id, submission.mailbox)
        if (by_sender[(*mailbox, submission.ip_hash)] >= config["MAILS_PER_MAILBOX"]
                or in_all[mailbox] >= config["MAILS_PER_MAILBOX_IN_ALL"]):
            continue  # kept, not mailed: the mailbox has had its share of messages for now
        by_sender[(*mailbox, submission.ip_hash)] += 1
        in_all[mailbox] += 1
        submission.mailed_at = now
        repeat = (submission.petition_id, submission.email_canonical) in signed
        db.session.add(OutboxMessage(submission=submission, kind=mail.ALREADY_SIGNED if repeat else mail.CONFIRM))
    return len(pending)
