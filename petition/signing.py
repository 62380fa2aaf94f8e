"""Signing, confirming and withdrawing: the only code that writes signatures.

A signing request inserts one signature row and one outbox row in one transaction and touches nothing
shared, so signers never wait on each other. The unique index on (petition, canonical e-mail) decides
duplicates, even for simultaneous submissions; a repeat signer gets the same answer as a new one and only
the mailbox owner learns, by e-mail, that the address had signed already.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import asdict, dataclass

from flask import current_app
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from . import mail
from .extensions import db
from .models import CONFIRMED, HELD, PENDING, OutboxMessage, Petition, Signature, utcnow


INSERT_SIGNATURE = insert(Signature.__table__).returning(Signature.__table__.c.id)
INSERT_MAIL = insert(OutboxMessage.__table__)


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
# 100 ms. Queuing this process's writers on a lock of our own lets each go the moment the last one commits.
_SQLITE_WRITER = threading.Lock()


def _writer():
    return _SQLITE_WRITER if db.engine.dialect.name == "sqlite" else nullcontext()


def sign(petition: Petition, submission: Submission) -> None:
    """Record a signature (or a repeat) and queue the e-mail it warrants; answers nothing on purpose."""
    with _writer():
        _sign(petition, submission)


def _sign(petition: Petition, submission: Submission) -> None:
    petition_id = petition.id
    fields = asdict(submission)
    held = fields.pop("held")
    try:
        # Two plain INSERTs with prepared statements, no unit of work: the request every signer makes.
        signature_id = db.session.execute(INSERT_SIGNATURE, {
            "petition_id": petition_id, "status": HELD if held else PENDING, "mails_sent": 0 if held else 1,
            **fields}).scalar_one()
    except IntegrityError:
        db.session.rollback()
        if not held:
            _repeat(petition_id, submission.email_canonical)
        return
    if not held:
        db.session.execute(INSERT_MAIL, {"signature_id": signature_id, "kind": mail.CONFIRM})
    db.session.commit()
    if not held:
        mail.wake_sender()


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
