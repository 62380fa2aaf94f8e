"""Floods and bots, handled quietly: no CAPTCHA, no third-party script.

Per sender address and petition, a soft limit (a burst and a sustained window) marks further submissions as
held: they are mailed like any other, and once their owners confirm them an organiser reviews them before they
count. Addresses at the big mail providers are never held. A hard limit refuses with 429 and Retry-After. A
honeypot field, invisible to people and hidden from screen readers, marks bots' posts as held too, so nothing
a real person sent is ever thrown away. Every check runs on every post, whatever it finds, so the time a post
takes tells nothing. Addresses are kept only as keyed hashes.
"""

from __future__ import annotations

import time
from functools import lru_cache

from flask import abort, current_app
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse, parse_many

from . import hashing
from .extensions import limiter

HONEYPOT = "website"


def ip_hash(address: str | None = None) -> str:
    """The keyed hash of ``address``, by default the client's (as the trusted proxy saw it)."""
    return hashing.keyed(address or get_remote_address() or "unknown")


@lru_cache(maxsize=8)
def _limit(text: str) -> RateLimitItem:
    return parse(text)


def refuse_over_hard_limit(slug: str, client: str) -> None:
    """Count this post against the hard limit; past it, a 429 that says when the window opens again.

    Checked here, in the signing view, rather than by a Flask-Limiter decorator: the decorator evaluates
    its limits on every GET of the sign page too, the page each signer loads first. ``client`` is the
    sender's ``ip_hash``: never the plain address, or the store's keys would say who posted to which
    petition."""
    item = _limit(current_app.config["SIGN_HARD_LIMIT"])
    if not limiter.limiter.hit(item, "sign-hard", client, slug):
        reset = limiter.limiter.get_window_stats(item, "sign-hard", client, slug).reset_time
        abort(429, retry_after=max(1, int(reset - time.time()) + 1))


@lru_cache(maxsize=8)
def _limits(text: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(text))


def over_soft_limit(slug: str, client: str) -> bool:
    """Count this submission in every window of the soft limit; True if the sender has passed any."""
    hits = [limiter.limiter.hit(item, "sign-soft", client, slug)
            for item in _limits(current_app.config["SIGN_SOFT_LIMIT"])]  # all of them, always
    return not all(hits)


def looks_automated(form) -> bool:
    """A bot filled the field no person can see."""
    return bool((form.get(HONEYPOT) or "").strip())


def held(form, slug: str, domain: str, client: str | None = None) -> bool:
    """Whether this submission waits for an organiser once confirmed: a bot's, or from a flooding address
    at a mail domain that is not a big provider's."""
    flooding = over_soft_limit(slug, client or ip_hash())
    allowed = domain in current_app.config["SIGN_ALLOWED_DOMAINS"]
    return looks_automated(form) or (flooding and not allowed)
