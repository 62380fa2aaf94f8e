"""The session cookie, as Flask signs it, minus work that the busiest requests do not need."""

from __future__ import annotations

import hashlib

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.url_safe import URLSafeSerializerMixin

# Shorter JSON than this is not worth compressing: a signer's session, its CSRF token alone, is 57 bytes,
# and zlib would make it 65. (An organiser's, some 220 bytes, shrinks by a quarter.)
SHORT_PAYLOAD = 100


class Serializer(URLSafeTimedSerializer):
    """Flask's session serializer, minus the zlib attempt on short payloads, where it cannot win: each attempt
    sets up deflate's 256 KB of state, on the page every signer loads. Reading takes either form, as before."""

    def dump_payload(self, obj) -> bytes:
        json = super(URLSafeSerializerMixin, self).dump_payload(obj)  # the JSON, before the mixin's zlib
        if len(json) < SHORT_PAYLOAD:
            return base64_encode(json)
        return super().dump_payload(obj)


class SessionInterface(SecureCookieSessionInterface):
    """The count API never reads or writes a session, so its requests get none; the serializer (rebuilt
    by Flask for every read and every write) is built once per key. Its HMACs use OpenSSL's SHA-1 directly:
    Flask's lazy wrapper around it (there so that Flask imports where SHA-1 is barred) makes Python's ``hmac``
    take its pure-Python path, four times a signer. The cookies are the ones Flask writes, and either reads
    the other's."""

    digest_method = staticmethod(hashlib.sha1)

    def __init__(self) -> None:
        self._serializers: dict[tuple, URLSafeTimedSerializer] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        keys = (app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        if keys not in self._serializers:
            # As Flask builds it, with our class: the current key last, where itsdangerous expects it.
            serializer = Serializer([*keys[1:], keys[0]], salt=self.salt, serializer=self.serializer,
                                    signer_kwargs={"key_derivation": self.key_derivation,
                                                   "digest_method": self.digest_method})
            self._serializers = {keys: serializer}  # a new key replaces the old one
        return self._serializers[keys]

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith("/api/"):
            return self.make_null_session(app)
        return super().open_session(app, request)
