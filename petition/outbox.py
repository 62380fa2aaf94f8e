"""The outbox: rows of messages waiting to go out, claimed, delivered and recorded one by one.

Mail never leaves inside a request. The signing transaction writes an outbox row; the sender (``petition
send-mail``, or the thread that ``petition serve`` starts) delivers due rows through ``mail``'s transports,
retrying with back-off, so a slow or broken SMTP server delays e-mails but never loses a signature or an
e-mail. Each message is recorded as sent the moment the server takes it.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from email.message import EmailMessage

from flask import Flask, current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from . import connections, mail
from .extensions import db
from .models import OutboxMessage, Signature, Submission, utcnow

log = logging.getLogger(__name__)

BATCH = 50
MAX_BACKOFF = timedelta(hours=1)
# A message still not delivered after this many tries (some two hours of back-off) is given up and shown to
# organisers; so is one the server refuses for good at once.
MAX_ATTEMPTS = 8
# A sender claims a batch for CLAIM (no other sender takes those rows meanwhile) and sends from it for
# CLAIM_USE at most, so that even a message begun at the end, with the SMTP timeout, is recorded in time.
CLAIM = timedelta(minutes=5)
CLAIM_USE = timedelta(minutes=2)

_wake = threading.Event()
_UNSETTLED = threading.Lock()


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … up to an hour between tries."""
    return min(timedelta(seconds=30 * 2 ** min(max(attempts - 1, 0), 7)), MAX_BACKOFF)


def deliver_due(transport: mail.Transport | None = None, limit: int = BATCH,
                stop: threading.Event | None = None) -> tuple[int, int]:
    """Send the outbox rows that are due; return (sent, failed). Call inside an app context.

    Each message is recorded as sent in a short transaction of its own the moment the server has taken it, so
    an outage of the database costs at most that one record, which is kept here and written when the
    database is back (see ``Unsettled``). No transaction is open while a message is on the wire.

    Raises ``Unavailable`` when the mail server cannot be reached (no message is at fault, none is charged a
    try), and the database's error when the database cannot be; the claimed rows not sent are given back
    either way. ``stop``, when set, ends the batch between two messages."""
    app = current_app.app_context().app  # the app itself, not the proxy: kept per app (Unsettled)
    transport = transport or mail.transport_for(app)
    unsettled = Unsettled.of(app)
    unsettled.write()  # what an earlier round could not record; raises while the database is still away
    claim = _claim(limit)
    remaining = list(claim.ids)
    sent = failed = 0
    try:
        while remaining and not (stop is not None and stop.is_set()) and not claim.stale():
            outbox_id = remaining[0]
            composed = _compose_row(app, outbox_id)
            if composed is None:  # erased, or sent by another sender after a claim ran out
                remaining.pop(0)
                continue
            message, attempts = composed
            if isinstance(message, Exception):  # this row cannot be rendered: its failure, not an outage
                _record_failure(outbox_id, attempts, message)
                remaining.pop(0)
                failed += 1
                continue
            try:
                transport.send(message)
            except Exception as error:
                if mail.unreachable(error):
                    raise error if isinstance(error, mail.Unavailable) else mail.Unavailable(error) from None
                _record_failure(outbox_id, attempts, error)
                remaining.pop(0)
                failed += 1
                continue
            remaining.pop(0)
            _record_sent(unsettled, outbox_id)
            sent += 1
    except mail.Unavailable as error:
        # The database is there: give the rows back now, and say on the first why it waits.
        _give_back(unsettled, remaining, claim.lease, note=f"{type(error.cause).__name__}: {error.cause}")
        raise
    except BaseException as error:
        # Most likely the database went away: the rows are given back when it returns (or by their lease).
        if isinstance(error, SQLAlchemyError):
            unsettled.give_back(remaining, claim.lease)
        else:
            _give_back(unsettled, remaining, claim.lease)
        raise
    _give_back(unsettled, remaining, claim.lease)  # stopped, or the claim ran long: the rest go next round
    return sent, failed


class Claim:
    """Rows taken by this sender until ``lease``; used for ``CLAIM_USE`` at most, well within it."""

    def __init__(self, ids: list[int], lease: datetime) -> None:
        self.ids, self.lease, self.began = ids, lease, time.monotonic()

    def stale(self) -> bool:
        return time.monotonic() - self.began > CLAIM_USE.total_seconds()


def _due(now: datetime):
    return (OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None),
            OutboxMessage.next_attempt_at <= now)


def _claim(limit: int) -> Claim:
    """Take up to ``limit`` due rows for this sender, in one short transaction.

    Claimed, not locked: the rows' ``next_attempt_at`` is moved to the end of a lease, which keeps every other
    sender off them while they go out one by one. Row locks (FOR UPDATE SKIP LOCKED, on PostgreSQL) would be
    released by the first message's own commit, or else would have to be held, in a transaction open across
    every SMTP exchange, blocking erasures of those rows and compaction for as long as the mail server takes.
    The locks are taken here only so that two senders claiming at once take different rows. A sender that
    dies mid-batch leaves its unsent rows to the next one when the lease ends."""
    now = utcnow()
    lease = now + CLAIM
    due = (select(OutboxMessage.id).where(*_due(now)).order_by(OutboxMessage.id).limit(limit)
           .with_for_update(skip_locked=True))
    _end_read()
    with connections.writer_turn(db.engine):
        try:
            ids = db.session.scalars(due).all()
            if ids:
                # RETURNING, and the conditions again: on SQLite the select runs before the write transaction
                # begins, so a row another writer took meanwhile is not counted as ours.
                ids = db.session.execute(
                    update(OutboxMessage).where(OutboxMessage.id.in_(ids), *_due(now))
                    .values(next_attempt_at=lease).returning(OutboxMessage.id),
                    execution_options={"synchronize_session": False}).scalars().all()
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    return Claim(sorted(ids), lease)


def _compose_row(app: Flask, outbox_id: int) -> tuple[EmailMessage | Exception, int] | None:
    """Read one claimed row and render its message (or the error that prevents it), with the tries it has had;
    None if it is gone or sent. The read ends here: nothing is held while the message goes out."""
    try:
        item = db.session.get(OutboxMessage, outbox_id, populate_existing=True)
        if item is None or item.sent_at is not None:
            return None
        try:
            with app.test_request_context(base_url=app.config["BASE_URL"]):
                message, _ = mail.compose(item)
        except (OperationalError, InterfaceError):
            raise  # the database, not the row
        except Exception as error:
            return error, item.attempts
        return message, item.attempts
    finally:
        db.session.rollback()


def _record_sent(unsettled: "Unsettled", outbox_id: int) -> None:
    """Record at once that the server took the message. If the database is gone, keep the record to write
    when it is back: this message is the one that a stop of this sender before then would send twice."""
    now = utcnow()
    try:
        _write(update(OutboxMessage).where(OutboxMessage.id == outbox_id, OutboxMessage.sent_at.is_(None))
               .values(sent_at=now, attempts=OutboxMessage.attempts + 1))
    except Exception as error:
        unsettled.sent[outbox_id] = now
        log.error("e-mail %s went out but could not be recorded as sent (%s): it is recorded when the database "
                  "is back, and would be sent again only if the sender stopped before then",
                  outbox_id, type(error).__name__)
        raise


def _record_failure(outbox_id: int, attempts: int, error: Exception) -> None:
    """The server refused this message, or it could not be rendered: retry after a back-off, up to a point."""
    attempts += 1
    now = utcnow()
    given_up = attempts >= MAX_ATTEMPTS or mail.permanent(error)
    _write(update(OutboxMessage).where(OutboxMessage.id == outbox_id).values(
        attempts=attempts, next_attempt_at=now + backoff(attempts),
        last_error=f"{type(error).__name__}: {error}"[:500], failed_at=now if given_up else None))
    # The error text can name the recipient; it stays in the database, the log gets its type only.
    log.warning("e-mail %s not sent (attempt %s%s): %s", outbox_id, attempts, ", given up" if given_up else "",
                type(error).__name__)


def _give_back(unsettled: "Unsettled", ids: list[int], lease: datetime, note: str | None = None) -> None:
    """Make claimed rows due again now; ``note`` goes to the first one's ``last_error`` (why it waits). If the
    database cannot take it, this is kept to be written when it can."""
    if not ids:
        return
    try:
        with connections.writer_turn(db.engine):
            try:
                _give_back_rows(ids, lease)
                if note:
                    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == ids[0])
                                       .values(last_error=note[:500]))
                db.session.commit()
            except BaseException:
                db.session.rollback()
                raise
    except Exception:
        unsettled.give_back(ids, lease)


def _give_back_rows(ids: list[int], lease: datetime) -> None:
    # Only rows still under this claim: once its lease has run out another sender may hold them.
    db.session.execute(update(OutboxMessage).where(
        OutboxMessage.id.in_(ids), OutboxMessage.sent_at.is_(None), OutboxMessage.next_attempt_at == lease)
        .values(next_attempt_at=utcnow()), execution_options={"synchronize_session": False})


def _write(statement) -> None:
    """One statement in a short write transaction of its own, in SQLite's writers' queue."""
    with connections.writer_turn(db.engine):
        try:
            db.session.execute(statement, execution_options={"synchronize_session": False})
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise


def _end_read() -> None:
    """End a read the caller may have begun: SQLite cannot turn an older snapshot into a write."""
    if db.session().in_transaction():
        with connections.writer_turn(db.engine):
            db.session.commit()


class Unsettled:
    """What this process knows and the database does not, after the database went away mid-batch: messages
    the server took (each one's time), and claimed rows not sent. ``write`` records both once the database
    is back, before anything else is sent. Kept per app: one sender per process and database."""

    KEY = "petition.outbox.unsettled"

    def __init__(self) -> None:
        self.sent: dict[int, datetime] = {}
        self.given_back: dict[int, datetime] = {}  # row id: the lease it is claimed until

    @classmethod
    def of(cls, app: Flask) -> "Unsettled":
        with _UNSETTLED:
            return app.extensions.setdefault(cls.KEY, cls())

    def give_back(self, ids: list[int], lease: datetime) -> None:
        self.given_back.update(dict.fromkeys(ids, lease))

    def write(self) -> None:
        if not self.sent and not self.given_back:
            return
        sent, given_back = dict(self.sent), dict(self.given_back)
        _end_read()
        with connections.writer_turn(db.engine):
            try:
                for outbox_id, when in sent.items():
                    db.session.execute(
                        update(OutboxMessage)
                        .where(OutboxMessage.id == outbox_id, OutboxMessage.sent_at.is_(None))
                        .values(sent_at=when, attempts=OutboxMessage.attempts + 1),
                        execution_options={"synchronize_session": False})
                for lease in set(given_back.values()):
                    _give_back_rows([i for i, held in given_back.items() if held == lease], lease)
                db.session.commit()
            except BaseException:
                db.session.rollback()
                raise
        for outbox_id in sent:
            del self.sent[outbox_id]
        for outbox_id in given_back:
            del self.given_back[outbox_id]
        if sent:
            log.info("%d e-mail(s) sent while the database was away now recorded as sent: %s", len(sent),
                     ", ".join(map(str, sorted(sent))))


def given_up(petition_id: int, limit: int = 50) -> list[OutboxMessage]:
    """For organisers: the latest e-mails about a petition that the sender gave up on."""
    about = func.coalesce(Submission.petition_id, Signature.petition_id)
    return list(db.session.scalars(
        select(OutboxMessage).outerjoin(OutboxMessage.submission).outerjoin(OutboxMessage.signature)
        .where(OutboxMessage.failed_at.is_not(None), about == petition_id)
        .order_by(OutboxMessage.failed_at.desc()).limit(limit)))


def wake_sender() -> None:
    """Tell a background sender in this process that there is new mail."""
    _wake.set()


def wait_for_work(seconds: float) -> None:
    """Sleep until ``wake_sender`` is called in this process, or for ``seconds``."""
    _wake.wait(seconds)
    _wake.clear()
