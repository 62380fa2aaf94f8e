"""Signed, expiring tokens for the links in e-mails.

A confirmation token names a submission, a 'manage' token a signature, each by id and by its random nonce,
so it carries no personal data, cannot be forged without the secret key, and stops working when its row is
gone (confirmed, replaced or withdrawn).
"""

from __future__ import annotations

import hmac

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .extensions import db
from .models import Signature, Submission

CONFIRM = "confirm"
MANAGE = "manage"


class TokenError(Exception):
    """The link is broken, expired or no longer matches a signature; ``expired`` tells which."""

    def __init__(self, expired: bool = False) -> None:
        self.expired = expired
        super().__init__("expired" if expired else "invalid")


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"petition-{purpose}")


ROWS = {CONFIRM: Submission, MANAGE: Signature}


def make(row: Submission | Signature, purpose: str) -> str:
    return _serializer(purpose).dumps([row.id, row.nonce])


def max_age(purpose: str) -> int:
    days = current_app.config["CONFIRM_DAYS" if purpose == CONFIRM else "MANAGE_DAYS"]
    return days * 86400


def load(token: str, purpose: str):
    """The submission (CONFIRM) or signature (MANAGE) a token names, or ``TokenError``."""
    try:
        row_id, nonce = _serializer(purpose).loads(token, max_age=max_age(purpose))
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
