"""Floods and bots, handled quietly: no CAPTCHA, no third-party script.

Per sender address and petition, a soft limit holds further signatures for an organiser's review (they are
stored, not counted, and the sender sees the usual page), and a hard limit refuses with 429 and
Retry-After. A honeypot field, invisible to people and hidden from screen readers, marks bots' posts
as held too, so nothing a real person sent is ever thrown away. Addresses are kept only as keyed hashes.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from flask import current_app, request
from flask_limiter.util import get_remote_address
from limits import parse

from .extensions import limiter

HONEYPOT = "website"


def sender() -> str:
    """The sender's address (the client's, as the trusted proxy saw it)."""
    return get_remote_address() or "unknown"


@lru_cache(maxsize=4)
def _hash_key(secret: str) -> bytes:
    """Derived once per secret, not on every signature."""
    return hmac.new(secret.encode(), b"petition ip hash", hashlib.sha256).digest()


def ip_hash(address: str | None = None) -> str:
    key = _hash_key(current_app.config["SECRET_KEY"])
    return hmac.new(key, (address or sender()).encode(), hashlib.sha256).hexdigest()[:32]


def hard_limit() -> str:
    return current_app.config["SIGN_HARD_LIMIT"]


def per_sender_and_petition() -> str:
    return f"{sender()}|{(request.view_args or {}).get('slug', '')}"


def over_soft_limit(slug: str) -> bool:
    """Count this signature against the soft limit; True once the sender has passed it."""
    item = parse(current_app.config["SIGN_SOFT_LIMIT"])
    return not limiter.limiter.hit(item, "sign-soft", sender(), slug)


def looks_automated(form) -> bool:
    """A bot filled the field no person can see."""
    return bool((form.get(HONEYPOT) or "").strip())
