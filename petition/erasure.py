"""Erasing so that the bytes are gone: what a withdrawal, an organiser's erasure or the purge removes must
leave no copy in the database's files (journals and free pages included) nor in the outbox folder.

An erasing transaction calls ``mark`` before it commits; ``settle`` after the commit; ``compact`` rewrites
what still holds erased bytes.
"""

from __future__ import annotations

from . import mail
from .extensions import db
from .models import CompactionDue


def mark() -> None:
    """In the erasing transaction: the files must be compacted once it has committed."""
    db.session.add(CompactionDue())


def settle() -> None:
    """After the erasing commit: compact now where that is cheap, else leave it to the background sender."""
    mail.wake_sender()
