"""Settings read from ``PETITION_*`` environment variables.

Every setting the operator may change is listed in ``SETTINGS`` with its default, so README and the code
cannot disagree about what exists. The embedded default needs none of them: the instance folder holds the
SQLite database and a secret key generated on first start.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from limits import parse_many
from limits.errors import ConfigurationError
from limits.storage import SCHEMES, RedisStorage, storage_from_string
from limits.util import SEPARATORS

from . import files, hashing, mail


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    env: str
    key: str
    default: Any
    parse: Callable[[str], Any]
    doc: str


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive whole number")
    return number


def _positive_seconds(value: str) -> float:
    number = float(value)
    if not 0 < number < float("inf"):
        raise ValueError("must be a positive number of seconds")
    return number


def _domains(value: str) -> frozenset[str]:
    return frozenset(part.strip().lower() for part in value.split(",") if part.strip())


def _rate_limits(value: str) -> str:
    """One or more limits as ``limits`` reads them, every one of them; kept as written."""
    try:
        parse_many(value)
    except ValueError:
        bad = next((item.strip() for item in SEPARATORS.split(value) if not _one_limit(item)), value.strip())
        problem = f"{bad!r} is not a rate limit" if bad else "one of its limits is empty"
        raise ValueError(f"{problem}; write one or more limits separated by ';', each a number per second, "
                         "minute, hour, day, month or year, or per N of them: for example "
                         "'5 per minute; 30 per 10 minutes'") from None
    return value


def _one_limit(text: str) -> bool:
    try:
        return len(parse_many(text)) == 1
    except ValueError:
        return False


_STORE_EXAMPLE = "for example memory:// (one process) or redis://127.0.0.1:6379 (several processes or hosts)"


def _rate_limit_store(value: str) -> str:
    """A store ``limits`` can count in, checked without connecting to it. The URL is never quoted: a Redis
    URL may hold a password."""
    scheme, separator, _ = value.partition("://")
    known = sorted(name for name in SCHEMES if not name.startswith("async+"))  # the service's limiter is sync
    if not separator or scheme not in known:
        problem = f"{scheme}:// is no store limits knows" if separator else "it has no scheme:// naming a store"
        raise ValueError(f"{problem} (it knows {', '.join(known)}); {_STORE_EXAMPLE}")
    store = SCHEMES[scheme]
    server = "valkey" if scheme.startswith("valkey") else "redis"
    modules = {name.split(".")[0] for name in store.DEPENDENCIES}
    if {"redis", "valkey"} <= modules:  # either client serves, each its own scheme
        modules -= {"redis", "valkey"} - {server}
    missing = sorted(name for name in modules if importlib.util.find_spec(name) is None)
    if missing:
        raise ValueError(f"a {scheme}:// store needs the Python package {', '.join(missing)}, which is not "
                         f"installed; {_STORE_EXAMPLE}")
    if store is RedisStorage:  # the client is built, its URL read; it connects on first use only
        try:
            storage_from_string(value)
        except (ConfigurationError, ValueError) as error:
            raise ValueError(f"the {scheme}:// URL cannot be used ({error}); {_STORE_EXAMPLE}") from None
    return value


def _smtp_url(value: str) -> str:
    mail.parse_smtp_url(value)  # the sender's own reading, so that both agree
    return value


_HOST = re.compile(r"[\w-]+(?:\.[\w-]+)*\.?")
_BASE_URL_EXAMPLE = "for example https://petition.example.org, or http://127.0.0.1:8000 on this machine"


def _base_url(value: str) -> str:
    """``http(s)://host[:port]`` and nothing more: links are this plus a path of the site's, and the sender
    renders them with it as the request's base, so a path here would be doubled."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:  # a port that is no number or out of range, a broken [IPv6] address
        parts, port = None, 0
    if any(character.isspace() for character in value):
        problem = "it contains a space or line break"
    elif "@" in value:  # not quoted: it may hold a real password
        problem = "it must not hold a user or password"
    elif parts is None or port == 0:
        problem = f"{value!r} has no readable host and port (a port is a number from 1 to 65535)"
    elif parts.scheme not in ("http", "https"):
        problem = f"{value!r} must start with http:// or https://"
    elif not parts.hostname or not (_HOST.fullmatch(parts.hostname) or _ip_address(parts.hostname)):
        problem = f"{value!r} names no host"
    elif parts.path not in ("", "/") or parts.query or parts.fragment or value.endswith(("?", "#")):
        problem = f"{value!r} must be the site's root, with no path, query or fragment"
    else:
        return value
    raise ValueError(f"{problem}; {_BASE_URL_EXAMPLE}")


def _ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


SETTINGS: tuple[Setting, ...] = (
    Setting("PETITION_ENV", "ENV", "development", str,
            "`production` refuses to start without an explicit secret key and SMTP."),
    Setting("PETITION_INSTANCE_PATH", "INSTANCE_PATH", "./instance", str,
            "Folder for the SQLite database, the generated secret key and the `.eml` outbox."),
    Setting("PETITION_DATABASE_URL", "SQLALCHEMY_DATABASE_URI", None, str,
            "SQLAlchemy URL; default `sqlite:///<instance>/petition.sqlite3`. "
            "`postgresql+psycopg://user:password@host/db` for PostgreSQL."),
    Setting("PETITION_DB_WAIT_SECONDS", "DB_WAIT_SECONDS", 5, _positive_seconds,
            "Longest a request waits for the database at each step: a pooled connection, its turn among "
            "SQLite's writers, SQLite's lock (busy timeout); on PostgreSQL the connection and any lock, unless "
            "the URL sets `connect_timeout` or `options`. Then it answers 503 with `Retry-After`. Keep three "
            "times it under gunicorn's `--timeout` (30 in the shipped unit)."),
    Setting("PETITION_SECRET_KEY", "SECRET_KEY", None, str,
            "Signs sessions, CSRF tokens and e-mail links. Default: generated once into `<instance>/secret_key`."),
    Setting("PETITION_SMTP_URL", "SMTP_URL", None, _smtp_url,
            "`smtp://user:password@host:587` (STARTTLS required, unless the host is loopback or the URL ends in "
            "`?starttls=auto` or `?starttls=off`) or `smtps://…:465`. "
            "Unset: e-mails are written as `.eml` files to `<instance>/outbox/`."),
    Setting("PETITION_MAIL_FROM", "MAIL_FROM", "Campaign Kazakhstan <petitions@localhost>", str,
            "The From header of every e-mail."),
    Setting("PETITION_BASE_URL", "BASE_URL", "http://127.0.0.1:8000", _base_url,
            "Public address of the site, `https://host[:port]` with no path; links in e-mails start with it."),
    Setting("PETITION_PETITIONS_DIR", "PETITIONS_DIR", "docs/en/petitions", str,
            "Folder of the Markdown pages that declare the petitions."),
    Setting("PETITION_SITE_DIR", "SITE_DIR", "site", str,
            "The served site: a link `petition publish` points at each new build; its page frame dresses the "
            "service's pages, and `petition serve` serves its files."),
    Setting("PETITION_PRIVACY_URL", "PRIVACY_URL", "/privacy/", str,
            "Where the sign form links to the privacy notice."),
    Setting("PETITION_TRUSTED_PROXIES", "TRUSTED_PROXIES", 0, int,
            "How many reverse proxies (nginx: 1) stand before the service; their X-Forwarded-* headers "
            "are then believed."),
    Setting("PETITION_CONFIRM_DAYS", "CONFIRM_DAYS", 14, _positive_int,
            "Days a confirmation link stays valid."),
    Setting("PETITION_MANAGE_DAYS", "MANAGE_DAYS", 365, _positive_int,
            "Days a 'manage my signature' link stays valid."),
    Setting("PETITION_MAILS_PER_MAILBOX", "MAILS_PER_MAILBOX", 3, _positive_int,
            "Most e-mails posts from one sender address can cause one mailbox about one petition in "
            "`PETITION_MAIL_CAP_HOURS` (all its `+tag` variants together); further submissions are kept, "
            "not mailed."),
    Setting("PETITION_MAILS_PER_MAILBOX_IN_ALL", "MAILS_PER_MAILBOX_IN_ALL", 10, _positive_int,
            "The same from all sender addresses together: a mailbox's owner, signing from their own "
            "network, still gets a link after someone else has used up their share."),
    Setting("PETITION_MAIL_CAP_HOURS", "MAIL_CAP_HOURS", 24, _positive_int,
            "The window of the e-mail cap: after it, a signer who got no link can sign again and get one."),
    Setting("PETITION_RETENTION_DAYS", "RETENTION_DAYS", 180, _positive_int,
            "`petition purge` anonymises signatures this many days after their petition closed."),
    Setting("PETITION_IP_HASH_DAYS", "IP_HASH_DAYS", 7, _positive_int,
            "Days the keyed hash of a sender's address is kept with a submission or signature (for abuse "
            "review); `petition purge` then erases it, and replaces the instance's hash key as often."),
    Setting("PETITION_HASH_KEY", "HASH_KEY", None, str,
            "Key of the hashes of client addresses (rate limits, abuse review). Default: a random key in "
            "`<instance>/hash_key`, replaced by `petition purge` every `PETITION_IP_HASH_DAYS`. Set it when "
            "several hosts serve; not derived from the secret key."),
    Setting("PETITION_RATELIMIT_STORAGE_URL", "RATELIMIT_STORAGE_URI", "memory://", _rate_limit_store,
            "Where rate limits are counted: `memory://` for one process, `redis://host:6379` when several "
            "processes or hosts serve."),
    Setting("PETITION_SIGN_SOFT_LIMIT", "SIGN_SOFT_LIMIT", "5 per minute; 30 per 10 minutes", _rate_limits,
            "Submissions from one address to one petition beyond either window are held: still mailed, and once "
            "confirmed, counted only after an organiser accepts them. Burst and sustained windows, as UK "
            "e-petitions has them, five times wider for shared addresses."),
    Setting("PETITION_SIGN_ALLOWED_DOMAINS", "SIGN_ALLOWED_DOMAINS", ",".join((
        "gmail.com", "googlemail.com", "mail.ru", "bk.ru", "inbox.ru", "list.ru", "internet.ru", "yandex.ru",
        "yandex.kz", "yandex.com", "ya.ru", "outlook.com", "hotmail.com", "live.com", "icloud.com", "yahoo.com",
        "proton.me", "protonmail.com")), _domains,
            "Comma-separated mail domains never held by the soft limit: big providers whose addresses a flood "
            "cannot make up in numbers (the owner still has to confirm)."),
    Setting("PETITION_SIGN_HARD_LIMIT", "SIGN_HARD_LIMIT", "300 per hour", _rate_limits,
            "Sign-form posts from one address to one petition beyond this are refused (429)."),
    Setting("PETITION_COUNT_CACHE_SECONDS", "COUNT_CACHE_SECONDS", 5, int,
            "How long one process reuses a computed count, a petition's details and its rendered sign form."),
    Setting("PETITION_COUNT_MAX_AGE", "COUNT_MAX_AGE", 10, int,
            "`Cache-Control: max-age` of the count API and of the pages' live parts (how long nginx keeps them)."),
)


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Return the config keys given by the environment, parsed, with the defaults for the rest."""
    config: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is None or raw == "":
            written = isinstance(setting.default, str) and setting.parse is not str  # as a variable would be
            config[setting.key] = setting.parse(setting.default) if written else setting.default
            continue
        try:
            config[setting.key] = setting.parse(raw)
        except ValueError as error:
            raise ConfigError(f"{setting.env}: {error}") from None
    return config


def finish(config: dict[str, Any], instance: Path) -> None:
    """Fill in the embedded defaults and refuse an unsafe production configuration."""
    production = config.get("ENV") == "production"
    if production and not config.get("SECRET_KEY"):
        raise ConfigError("PETITION_SECRET_KEY must be set when PETITION_ENV=production")
    if production and not config.get("SMTP_URL"):
        raise ConfigError("PETITION_SMTP_URL must be set when PETITION_ENV=production")
    # Keys, database and outbox are the service user's alone; an older install is tightened here.
    files.private_folder(instance)
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _stored_secret_key(instance / "secret_key")
    files.tighten(instance / hashing.KEY_FILE, files.FILE)
    if not config.get("SQLALCHEMY_DATABASE_URI"):
        config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'petition.sqlite3'}"
    files.private_sqlite(config["SQLALCHEMY_DATABASE_URI"])
    config["BASE_URL"] = str(config["BASE_URL"]).rstrip("/")
    config["SITE_DIR"] = str(Path(config["SITE_DIR"]).absolute())  # a link publish swaps: not resolved
    config.setdefault("OUTBOX_DIR", str(instance / "outbox"))
    files.private_outbox(Path(config["OUTBOX_DIR"]))
    config["SESSION_COOKIE_SECURE"] = production
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SESSION_COOKIE_HTTPONLY"] = True


def _stored_secret_key(path: Path) -> str:
    """Read the instance's secret key, creating it (readable by its owner only) the first time."""
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    else:
        files.tighten(path, files.FILE)
        return key
    key = secrets.token_urlsafe(48)
    try:
        fd = files.create_private(path)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key
