"""Organiser accounts: scrypt-hashed passwords, created and managed from the command line only; failed logins
limited per account."""

from __future__ import annotations

import secrets
from functools import cache

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from . import hashing, ratelimits
from .extensions import db
from .models import Organiser, utcnow

MIN_PASSWORD = 12

# Failed logins per account, from whatever addresses: an attacker spread over many addresses gets 5 guesses a
# minute and 20 an hour at one account, and the organiser whose account is attacked waits an hour at most.
# Unknown addresses are counted and refused the same way, so a refusal tells nobody that an account exists.
FAILED_LOGINS = ratelimits.parsed("5 per minute;20 per hour")


@cache
def _unknown() -> str:
    """Checked against when the e-mail is unknown, so both refusals take the same time. Made on first use:
    at import it cost every process a scrypt hash at start."""
    return generate_password_hash("no organiser has this password", method="scrypt")


class AccountError(ValueError):
    """The command cannot be done; the message says why."""


class TooManyFailures(Exception):
    """Logins with this e-mail address are paused after too many failures; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def normalise(email: str) -> str:
    return email.strip().lower()


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def _hash(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    return generate_password_hash(password, method="scrypt")


def find(email: str) -> Organiser | None:
    return db.session.scalar(select(Organiser).where(func.lower(Organiser.email) == normalise(email)))


def add(email: str, password: str) -> Organiser:
    email = normalise(email)
    if "@" not in email:
        raise AccountError(f"'{email}' is not an e-mail address")
    if find(email):
        raise AccountError(f"{email} is already an organiser")
    organiser = Organiser(email=email, password_hash=_hash(password))
    db.session.add(organiser)
    db.session.commit()
    return organiser


def _existing(email: str) -> Organiser:
    organiser = find(email)
    if organiser is None:
        raise AccountError(f"no organiser {normalise(email)}")
    return organiser


def end_sessions(organiser: Organiser) -> None:
    """End every session of ``organiser``, on every device and every copy of its cookie: each holds the key it
    logged in with, and it is replaced here."""
    organiser.session_key = secrets.token_hex(16)
    db.session.commit()


def reset_password(email: str, password: str) -> None:
    organiser = _existing(email)
    organiser.password_hash = _hash(password)
    organiser.active = True
    end_sessions(organiser)  # whoever knew the old password may be logged in with it


def disable(email: str) -> None:
    organiser = _existing(email)
    organiser.active = False
    end_sessions(organiser)  # enabling it again (a new password) must not bring them back


def authenticate(email: str, password: str) -> Organiser | None:
    """The active organiser with this e-mail and password, or None: the caller cannot tell which was wrong.

    Raise ``TooManyFailures`` while the address is paused, without checking the password."""
    account = hashing.keyed(normalise(email))  # the limiter's store never holds the address itself
    limits = ratelimits.current()
    paused = [item for item in FAILED_LOGINS if not limits.test(item, "login-account", account)]
    if paused:
        raise TooManyFailures(limits.wait(paused, "login-account", account))
    organiser = find(email)
    valid = check_password_hash(organiser.password_hash if organiser else _unknown(), password)
    if organiser is None or not valid or not organiser.active:
        limits.hit_all(FAILED_LOGINS, "login-account", account)
        return None
    organiser.last_login_at = utcnow()
    db.session.commit()
    return organiser
