"""Confirming and withdrawing: the only code that writes signatures.

A signature is made only by its mailbox's owner confirming one submission, as it was shown to them: its
answers become the signature (or replace the details of the one already stored, which stays counted once),
and the mailbox's other submissions to that petition are discarded. The unique index on (petition,
canonical e-mail) keeps one signature per mailbox whatever the race.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from . import erasure, mail, outbox
from .extensions import db
from .models import CONFIRMED, HELD, OutboxMessage, Signature, Submission, utcnow

ANSWERS = ("name", "email", "country", "postcode", "comment", "public", "updates", "ip_hash")
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def confirm(submission: Submission) -> Signature:
    """Make ``submission``'s answers the signature of its mailbox, in one transaction; return it."""
    values = {name: getattr(submission, name) for name in ANSWERS}
    insert = _INSERTS[db.engine.dialect.name](Signature).values(
        petition_id=submission.petition_id, email_canonical=submission.email_canonical,
        status=HELD if submission.held else CONFIRMED, created_at=submission.created_at,
        confirmed_at=utcnow(), **values)
    # Already signed: the new answers replace the old, the signature stays where it was (counted, or held).
    upsert = insert.on_conflict_do_update(index_elements=["petition_id", "email_canonical"], set_=values)
    signature_id = db.session.execute(upsert.returning(Signature.id)).scalar_one()
    petition_id, canonical = submission.petition_id, submission.email_canonical
    db.session.expunge(submission)  # deleted below with its siblings
    db.session.execute(delete(Submission).where(Submission.petition_id == petition_id,
                                                Submission.email_canonical == canonical))
    db.session.add(OutboxMessage(signature_id=signature_id, kind=mail.COUNTED))
    db.session.commit()
    outbox.wake_sender()
    return db.session.get(Signature, signature_id)


def withdraw(signature: Signature) -> None:
    """Delete the signature, its mailbox's other submissions to the petition and everything queued for them:
    withdrawn means gone, from the database's files too (see ``erasure``)."""
    db.session.execute(delete(Submission).where(Submission.petition_id == signature.petition_id,
                                                Submission.email_canonical == signature.email_canonical))
    db.session.delete(signature)
    erasure.mark()
    db.session.commit()
    erasure.settle()
