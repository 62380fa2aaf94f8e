"""The end of the privacy lifecycle: a set time after a petition closes, its signers' personal data goes.

A purged signature keeps only what the counts need (petition, country, status and dates), so per-country and
per-day counts stay exact for ever. Purging again changes nothing. Run ``petition purge`` daily: it also erases
the hashes of client addresses after ``PETITION_IP_HASH_DAYS``, and compacts the database's files so that
nothing erased stays in them (see ``erasure``).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from sqlalchemy import String, cast, delete, func, literal, select, update

from . import erasure
from .extensions import db
from .models import OutboxMessage, Petition, Signature, Submission, utcnow

log = logging.getLogger(__name__)


def closed_on(petition: Petition) -> date:
    """The last signing day: the declared one, or the day an organiser closed it early."""
    if petition.closed_early_at is not None:
        return min(petition.closes_on, petition.closed_early_at.date())
    return petition.closes_on


def due(retention_days: int, today: date | None = None) -> list[Petition]:
    today = today or utcnow().date()
    petitions = db.session.scalars(select(Petition)).all()
    return [p for p in petitions if closed_on(p) + timedelta(days=retention_days) < today]


def expired_submissions(confirm_days: int, now=None, dry_run: bool = False) -> int:
    """Delete submissions whose confirmation link has expired: nobody can confirm them any more."""
    before = (now or utcnow()) - timedelta(days=confirm_days)
    stale = Submission.created_at < before
    if dry_run:
        return db.session.scalar(select(func.count()).where(stale))
    result = db.session.execute(delete(Submission).where(stale))
    if result.rowcount:
        erasure.mark()
    db.session.commit()
    if result.rowcount:
        erasure.settle()
    return result.rowcount


def ip_hashes(days: int, now=None, dry_run: bool = False) -> int:
    """Erase the keyed hashes of client addresses stored with submissions and signatures more than ``days``
    ago (they serve abuse review only while it is recent); return how many."""
    before = (now or utcnow()) - timedelta(days=days)
    erased = 0
    for model in (Submission, Signature):
        old = (model.created_at < before) & model.ip_hash.is_not(None)
        if dry_run:
            erased += db.session.scalar(select(func.count()).select_from(model).where(old))
        else:
            erased += db.session.execute(update(model).where(old).values(ip_hash=None)).rowcount
    if erased and not dry_run:
        erasure.mark()
    db.session.commit()
    if erased and not dry_run:
        erasure.settle()
    return erased


def purge(retention_days: int, today: date | None = None, dry_run: bool = False) -> dict[str, int]:
    """Anonymise the signatures of every petition past its retention; return rows purged per slug."""
    report: dict[str, int] = {}
    for petition in due(retention_days, today):
        remaining = (Signature.petition_id == petition.id) & Signature.purged_at.is_(None)
        if dry_run:
            report[petition.slug] = db.session.scalar(select(func.count()).where(remaining))
            continue
        # Unsent e-mails of these signers go first: they would carry the data being erased. Submissions
        # nobody confirmed go whole (their e-mails with them).
        mails = db.session.execute(delete(OutboxMessage).where(
            OutboxMessage.signature_id.in_(select(Signature.id).where(remaining))))
        submissions = db.session.execute(delete(Submission).where(Submission.petition_id == petition.id))
        result = db.session.execute(
            update(Signature).where(remaining).values(
                name="", email="", email_canonical=literal("purged-") + cast(Signature.id, String),
                postcode="", comment="", public=False, updates=False, ip_hash=None,
                nonce=literal("purged-") + cast(Signature.id, String),
                purged_at=utcnow()))
        erased = mails.rowcount + submissions.rowcount + result.rowcount
        if erased:
            erasure.mark()
        db.session.commit()
        if erased:
            erasure.settle()
        report[petition.slug] = result.rowcount
        if result.rowcount:
            log.info("purged %d signatures of %s (closed %s)", result.rowcount, petition.slug, closed_on(petition))
    return report
