"""The database tables, as typed SQLAlchemy 2.0 models.

A sign form's POST only appends a ``Submission``; a ``Signature`` exists once the mailbox's owner has
confirmed one submission, as it was shown to them. Counts are never stored: they are derived from the
signature rows (see ``counts``), so no two signers compete for one row.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime

from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

def new_token() -> str:
    """A link's token: 128 random bits, nothing else (no id, no date)."""
    return secrets.token_urlsafe(16)


CONFIRMED = "confirmed"  # counted
HELD = "held"  # confirmed by its owner, sent from a flooding address: counted once an organiser accepts it
PENDING = "pending"  # in the organisers' counts only: submissions that nobody has confirmed yet


def utcnow() -> datetime:
    """Naive UTC: stored the same way by SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


class Petition(db.Model):
    __tablename__ = "petition"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(500))
    body_html: Mapped[str] = mapped_column(Text)
    goal: Mapped[int]
    opens_on: Mapped[date]
    closes_on: Mapped[date]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Set when an organiser closes the petition before its closing date; cleared when reopened.
    closed_early_at: Mapped[datetime | None]

    def state(self, today: date | None = None) -> str:
        """'open', 'not_open' (before its first day) or 'closed' (after its last day, or closed early)."""
        today = today or utcnow().date()
        if self.closed_early_at is not None:
            return "closed"
        if today < self.opens_on:
            return "not_open"
        if today > self.closes_on:
            return "closed"
        return "open"

    @property
    def is_open(self) -> bool:
        return self.state() == "open"

    @property
    def closed_on(self) -> date | None:
        """The day it stopped taking signatures: the day an organiser closed it, else its last day once past."""
        if self.closed_early_at is not None:
            return self.closed_early_at.date()
        return self.closes_on if self.state() == "closed" else None


class Submission(db.Model):
    """One valid POST of the sign form, exactly as it was sent. Its e-mail link confirms these answers and no
    others, so whoever typed an address first cannot choose what its owner confirms. The background sender
    decides what each needs (``decided_at``); the POST itself never looks at other rows."""

    __tablename__ = "submission"
    __table_args__ = (
        # The sender's queue: what is not decided yet.
        Index("ix_submission_undecided", "decided_at", "id"),
        # A mailbox's submissions to one petition: discarded together when one is confirmed.
        Index("ix_submission_signer", "petition_id", "email_canonical"),
        # The e-mail cap: messages sent to one mailbox about one petition lately.
        Index("ix_submission_mailbox", "petition_id", "mailbox", "mailed_at"),
        UniqueConstraint("nonce", name="uq_submission_nonce"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    petition_id: Mapped[int] = mapped_column(ForeignKey("petition.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254))
    email_canonical: Mapped[str] = mapped_column(String(320))
    mailbox: Mapped[str] = mapped_column(String(320))
    country: Mapped[str] = mapped_column(String(2))
    postcode: Mapped[str] = mapped_column(String(40), default="")
    comment: Mapped[str] = mapped_column(String(500), default="")
    public: Mapped[bool] = mapped_column(default=False)
    updates: Mapped[bool] = mapped_column(default=False)
    # Over the soft limit or a bot's: still mailed; once confirmed, held for an organiser's review.
    held: Mapped[bool] = mapped_column(default=False)
    ip_hash: Mapped[str | None] = mapped_column(String(32))
    # The token of its confirmation link, and the only way to reach it from one.
    nonce: Mapped[str] = mapped_column(String(32), default=new_token)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    mailed_at: Mapped[datetime | None]  # when its e-mail was queued; None: none was (the cap, or closed)

    petition: Mapped[Petition] = relationship()


class Signature(db.Model):
    """A confirmed signature: the answers of the submission its owner confirmed."""

    __tablename__ = "signature"
    __table_args__ = (
        # One signature per petition per mailbox, whatever the race: the database decides.
        UniqueConstraint("petition_id", "email_canonical", name="uq_signature_petition_email"),
        # Serves the public counts: confirmed signatures of a petition, grouped by country.
        Index("ix_signature_counting", "petition_id", "status", "country"),
        # Serves the signer list in the order people signed, without sorting a million rows first.
        Index("ix_signature_list", "petition_id", "id"),
        UniqueConstraint("nonce", name="uq_signature_nonce"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    petition_id: Mapped[int] = mapped_column(ForeignKey("petition.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254))
    email_canonical: Mapped[str] = mapped_column(String(320))  # punycode can be longer
    country: Mapped[str] = mapped_column(String(2))
    postcode: Mapped[str] = mapped_column(String(40), default="")
    comment: Mapped[str] = mapped_column(String(500), default="")
    public: Mapped[bool] = mapped_column(default=False)
    updates: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(10), default=CONFIRMED)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)  # when the confirmed submission was sent
    confirmed_at: Mapped[datetime | None]
    # The token of its 'manage' link: a link stays bound to this row even if a withdrawn row's id is reused.
    nonce: Mapped[str] = mapped_column(String(32), default=new_token)
    # The sender's address, only as a keyed hash: enough to see a flood, useless to identify anyone.
    ip_hash: Mapped[str | None] = mapped_column(String(32))
    # Set by `petition purge`: personal data erased, country and dates kept for the counts.
    purged_at: Mapped[datetime | None]

    petition: Mapped[Petition] = relationship()

    @classmethod
    def of_address(cls, petition_id: int, email_canonical: str) -> Signature | None:
        """The signature a mailbox has on a petition, if it has signed."""
        return db.session.scalar(select(cls).where(cls.petition_id == petition_id,
                                                   cls.email_canonical == email_canonical))


class OutboxMessage(db.Model):
    """An e-mail to send, written in the same transaction as what causes it: about a submission (its
    confirmation link) or a signature (the receipt with its 'manage' link)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "sent_at", "failed_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"), index=True)
    signature_id: Mapped[int | None] = mapped_column(ForeignKey("signature.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]  # given up: too many tries, or refused for good; organisers see it
    last_error: Mapped[str | None] = mapped_column(String(500))

    submission: Mapped[Submission | None] = relationship()
    signature: Mapped[Signature | None] = relationship()


class Organiser(UserMixin, db.Model):
    """Someone who may log in to see counts and signer lists. Created from the command line only."""

    __tablename__ = "organiser"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Part of every session of this organiser: a new one ends them all (logout, new password, disabled).
    session_key: Mapped[str] = mapped_column(String(32), default=lambda: secrets.token_hex(16))

    @property
    def is_active(self) -> bool:  # Flask-Login: a disabled organiser is logged out at the next request
        return self.active


class ExportLog(db.Model):
    """Who took which signer list or counts, with which filters, how many rows, and when."""

    __tablename__ = "export_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(300))  # an organiser's e-mail, or "command line (user)"
    petition_id: Mapped[int] = mapped_column(ForeignKey("petition.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # signatures | counts
    format: Mapped[str] = mapped_column(String(10))
    filters: Mapped[dict] = mapped_column(JSON, default=dict)
    rows: Mapped[int | None]  # None while the download runs, or when it was broken off
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    petition: Mapped[Petition] = relationship()


class AuditRecord(db.Model):
    """Care work that touches signers: who viewed the delivery report, looked a signer up, erased, accepted or
    discarded, and when. Never the address looked up, nor any signer's data."""

    __tablename__ = "audit_record"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(300))  # an organiser's e-mail, or "command line (user)"
    action: Mapped[str] = mapped_column(String(30))
    petition_id: Mapped[int | None] = mapped_column(ForeignKey("petition.id", ondelete="CASCADE"), index=True)
    detail: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    petition: Mapped[Petition | None] = relationship()


class CompactionDue(db.Model):
    """Written in the same transaction as an erasure: the database's files still hold what was erased until
    ``erasure.compact`` has rewritten them."""

    __tablename__ = "compaction_due"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
