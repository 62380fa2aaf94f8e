"""Organiser accounts: scrypt-hashed passwords, created and managed from the command line only."""

from __future__ import annotations

import secrets
from functools import cache

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db
from .models import Organiser, utcnow

MIN_PASSWORD = 12


@cache
def _unknown() -> str:
    """Checked against when the e-mail is unknown, so both refusals take the same time. Made on first use:
    at import it cost every process a scrypt hash at start."""
    return generate_password_hash("no organiser has this password", method="scrypt")


class AccountError(ValueError):
    """The command cannot be done; the message says why."""


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


def reset_password(email: str, password: str) -> None:
    organiser = _existing(email)
    organiser.password_hash = _hash(password)
    organiser.active = True
    db.session.commit()


def disable(email: str) -> None:
    _existing(email).active = False
    db.session.commit()


def authenticate(email: str, password: str) -> Organiser | None:
    """The active organiser with this e-mail and password, or None: the caller cannot tell which was wrong."""
    organiser = find(email)
    valid = check_password_hash(organiser.password_hash if organiser else _unknown(), password)
    if organiser is None or not valid or not organiser.active:
        return None
    organiser.last_login_at = utcnow()
    db.session.commit()
    return organiser
