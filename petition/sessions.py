"""The session cookie, as Flask signs it, minus work that the busiest requests do not need."""

from __future__ import annotations

import hashlib

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class SessionInterface(SecureCookieSessionInterface):
    """The count API never reads or writes a session, so its requests get none; the serializer (rebuilt
    by Flask for every read and every write) is built once per key. Its HMACs use OpenSSL's SHA-1 directly:
    Flask's lazy wrapper around it (there so that Flask imports where SHA-1 is barred) makes Python's ``hmac``
    take its pure-Python path, four times a signer. The signatures are the same."""

    digest_method = staticmethod(hashlib.sha1)

    def __init__(self) -> None:
        self._serializers: dict[tuple, URLSafeTimedSerializer] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        keys = (app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        if keys not in self._serializers:
            serializer = super().get_signing_serializer(app)
            if serializer is None:
                return None
            self._serializers = {keys: serializer}  # a new key replaces the old one
        return self._serializers[keys]

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith("/api/"):
            return self.make_null_session(app)
        return super().open_session(app, request)
