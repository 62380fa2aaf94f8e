"""Keyed hashes of what must be recognised but never kept in clear: a client's address, an e-mail address
looked up by an organiser, an account a login names.

The key is not derived from the secret key. It is ``PETITION_HASH_KEY`` when set (several hosts must share
one), else a random key in the instance folder, which ``petition purge`` replaces every
``PETITION_IP_HASH_DAYS`` days: once the old key is gone, nobody can test guesses against hashes made with
it, whoever holds the server.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from functools import lru_cache
from pathlib import Path

from flask import current_app, request

KEY_FILE = "hash_key"
RECHECK_SECONDS = 10.0  # how soon a process takes a key that ``rotate`` replaced

_lock = threading.Lock()
_cache: dict[str, tuple[float, bytes]] = {}  # source -> (when checked, key)


@lru_cache(maxsize=2)
def _derived(configured: str) -> bytes:
    """A configured key of any length, as 32 bytes: once, not on every request."""
    return hashlib.sha256(configured.encode()).digest()


def _key_path() -> Path:
    return Path(current_app.instance_path) / KEY_FILE


def key() -> bytes:
    configured = current_app.config.get("HASH_KEY")
    if configured:
        return _derived(configured)
    path = _key_path()
    source = str(path)
    checked = _cache.get(source)
    if checked and time.monotonic() - checked[0] < RECHECK_SECONDS:
        return checked[1]
    with _lock:
        value = _read_or_create(path)
        _cache[source] = (time.monotonic(), value)
    return value


def _read_or_create(path: Path) -> bytes:
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        pass
    _write(path)
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def _write(path: Path) -> None:
    """A new random key, written whole under another name, then moved into place (readers see old or new)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    os.replace(temporary, path)


def keyed(value: str) -> str:
    return hmac.new(key(), value.encode(), hashlib.sha256).hexdigest()[:32]


def client() -> str:
    """The keyed hash of the client's address (as the trusted proxy saw it): what rate limits count by."""
    return keyed(request.remote_addr or "unknown")


def rotate(max_age_days: int) -> bool:
    """Replace the instance's key if it is older than ``max_age_days``; True if it was. A configured key is the
    operator's to rotate."""
    if current_app.config.get("HASH_KEY"):
        return False
    path = _key_path()
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    if age < max_age_days * 86400:
        return False
    with _lock:
        _write(path)
        _cache.pop(str(path), None)
    return True
