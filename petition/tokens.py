"""The tokens in e-mail links.

A link's token is its row's ``nonce``: 128 random bits and nothing else, so it tells nothing (no id, no
date) and cannot be guessed. A confirmation token names a submission, a 'manage' token a signature; each
stops working when its row is gone (confirmed, replaced or withdrawn) or its time is up.

Links sent before tokens were opaque carry the row's id and nonce signed with the secret key; they are still
read until they expire.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from .extensions import db
from .models import Signature, Submission, utcnow

CONFIRM = "confirm"
MANAGE = "manage"
ROWS = {CONFIRM: Submission, MANAGE: Signature}


class TokenError(Exception):
    """The link is broken, expired or no longer matches a signature; ``expired`` tells which."""

    def __init__(self, expired: bool = False) -> None:
        self.expired = expired
        super().__init__("expired" if expired else "invalid")


def make(row: Submission | Signature, purpose: str) -> str:
    return row.nonce


def max_age(purpose: str) -> int:
    days = current_app.config["CONFIRM_DAYS" if purpose == CONFIRM else "MANAGE_DAYS"]
    return days * 86400


def _issued(row: Submission | Signature):
    """When the row's link was first sent: a submission's when it came, a signature's when first confirmed
    (a later confirmation replaces its answers, not its place in the counts nor its link)."""
    if isinstance(row, Signature):
        return row.confirmed_at or row.created_at
    return row.created_at


def load(token: str, purpose: str):
    """The submission (CONFIRM) or signature (MANAGE) a token names, or ``TokenError``."""
    if "." in token:
        return _load_signed(token, purpose)
    model = ROWS[purpose]
    row = db.session.scalar(select(model).where(model.nonce == token)) if 16 <= len(token) <= 32 else None
    if row is None:
        raise TokenError()
    if utcnow() - _issued(row) > timedelta(seconds=max_age(purpose)):
        raise TokenError(expired=True)
    return row


def _load_signed(token: str, purpose: str):
    """A link sent before tokens were opaque: ``[id, nonce]``, signed and timed by itsdangerous."""
    serializer = URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"petition-{purpose}")
    try:
        row_id, nonce = serializer.loads(token, max_age=max_age(purpose))
    except SignatureExpired:
        raise TokenError(expired=True) from None
    except (BadSignature, ValueError, TypeError):
        raise TokenError() from None
    if not isinstance(row_id, int) or not isinstance(nonce, str):
        raise TokenError()
    row = db.session.get(ROWS[purpose], row_id)
    if row is None or not hmac.compare_digest(row.nonce, nonce):
        raise TokenError()
    return row
