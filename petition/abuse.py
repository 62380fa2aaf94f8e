"""Floods and bots, handled quietly: no CAPTCHA, no third-party script.

Per sender address and petition, a soft limit (a burst and a sustained window) marks further submissions as
held: they are mailed like any other, and once their owners confirm them an organiser reviews them before they
count. Addresses at the big mail providers are never held. A hard limit refuses with 429 and Retry-After. A
honeypot field, invisible to people and hidden from screen readers, marks bots' posts as held too, so nothing
a real person sent is ever thrown away. Every check runs on every post, whatever it finds, so the time a post
takes tells nothing. Addresses are kept only as keyed hashes.
"""

from __future__ import annotations

from flask import abort, current_app

from . import hashing, ratelimits

HONEYPOT = "website"


def ip_hash(address: str | None = None) -> str:
    """The keyed hash of ``address``, by default the client's (as the trusted proxy saw it)."""
    return hashing.keyed(address) if address else hashing.client()


def refuse_over_hard_limit(slug: str, client: str) -> None:
    """Count this post against the hard limit; past it, a 429 that says when the window opens again.

    ``client`` is the sender's ``ip_hash``: never the plain address, or the store's keys would say who
    posted to which petition."""
    limits = ratelimits.current()
    passed = limits.hit_all(ratelimits.parsed(current_app.config["SIGN_HARD_LIMIT"]), "sign-hard", client, slug)
    if passed:
        abort(429, retry_after=limits.wait(passed, "sign-hard", client, slug))


def over_soft_limit(slug: str, client: str) -> bool:
    """Count this submission in every window of the soft limit; True if the sender has passed any."""
    limits = ratelimits.parsed(current_app.config["SIGN_SOFT_LIMIT"])
    return bool(ratelimits.current().hit_all(limits, "sign-soft", client, slug))


def looks_automated(form) -> bool:
    """A bot filled the field no person can see."""
    return bool((form.get(HONEYPOT) or "").strip())


def held(form, slug: str, domain: str, client: str | None = None) -> bool:
    """Whether this submission waits for an organiser once confirmed: a bot's, or from a flooding address
    at a mail domain that is not a big provider's."""
    flooding = over_soft_limit(slug, client or ip_hash())
    allowed = domain in current_app.config["SIGN_ALLOWED_DOMAINS"]
    return looks_automated(form) or (flooding and not allowed)
