"""Signed, expiring tokens for the links in e-mails.

A token names a signature by id and by its random nonce, so it carries no personal data, cannot be
forged without the secret key, and stops working when the signature is withdrawn.
"""

from __future__ import annotations

import hmac

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .extensions import db
from .models import Signature

CONFIRM = "confirm"
MANAGE = "manage"


class TokenError(Exception):
    """The link is broken, expired or no longer matches a signature; ``expired`` tells which."""

    def __init__(self, expired: bool = False) -> None:
        self.expired = expired
        super().__init__("expired" if expired else "invalid")


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"petition-{purpose}")


def make(signature: Signature, purpose: str) -> str:
    return _serializer(purpose).dumps([signature.id, signature.nonce])


def max_age(purpose: str) -> int:
    days = current_app.config["CONFIRM_DAYS" if purpose == CONFIRM else "MANAGE_DAYS"]
    return days * 86400


def load(token: str, purpose: str) -> Signature:
    """The signature a token names, or ``TokenError``."""
    try:
        signature_id, nonce = _serializer(purpose).loads(token, max_age=max_age(purpose))
    except SignatureExpired:
        raise TokenError(expired=True) from None
    except (BadSignature, ValueError, TypeError):
        raise TokenError() from None
    if not isinstance(signature_id, int) or not isinstance(nonce, str):
        raise TokenError()
    signature = db.session.get(Signature, signature_id)
    if signature is None or not hmac.compare_digest(signature.nonce, nonce):
        raise TokenError()
    return signature
