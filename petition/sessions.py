"""The organisers' session cookie, as Flask signs it, minus work that busy requests do not need."""

from __future__ import annotations

import hashlib
import json

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.url_safe import URLSafeSerializerMixin

# Shorter JSON than this is not worth compressing: a session holding only a CSRF token is 57 bytes, and zlib
# would make it 65. (A logged-in organiser's, some 220 bytes, shrinks by a quarter.)
SHORT_PAYLOAD = 100


class _Signer(TimestampSigner):
    """itsdangerous' signer, which derives its key from the secret again for every signature: here once."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._derived: dict = {}

    def derive_key(self, secret_key=None) -> bytes:
        if secret_key not in self._derived:
            self._derived[secret_key] = super().derive_key(secret_key)
        return self._derived[secret_key]


class Serializer(URLSafeTimedSerializer):
    """Flask's session serializer, minus the zlib attempt on short payloads, where it cannot win: each attempt
    sets up deflate's 256 KB of state, on the page every signer loads. Reading takes either form, as before.
    Its signers are made once per salt, not for every signature, and keep their derived keys."""

    default_signer = _Signer

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._signers: dict = {}

    def make_signer(self, salt=None) -> TimestampSigner:
        if salt not in self._signers:
            self._signers[salt] = super().make_signer(salt)
        return self._signers[salt]

    def dump_payload(self, obj) -> bytes:
        if _plain(obj):
            text = _compact_json(obj).encode()
        else:
            text = super(URLSafeSerializerMixin, self).dump_payload(obj)  # the JSON, before the mixin's zlib
        if len(text) < SHORT_PAYLOAD:
            return base64_encode(text)
        return super().dump_payload(obj)


# The JSON that Flask's tagged serializer and itsdangerous write for plain text, from one encoder: both build
# a new one for every cookie and every token (Flask's also tags the values), up to two fifths of the work of
# signing one.
_compact_json = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode


def _plain(obj) -> bool:
    """Text, or a dict of texts by keys that Flask's tags leave alone (a tag's key begins with a space)."""
    if type(obj) is str:
        return True
    return type(obj) is dict and all(type(key) is str and not key.startswith(" ") and type(value) is str
                                     for key, value in obj.items())


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

    def save_session(self, app: Flask, session, response: Response) -> None:
        """Flask's, but ``Vary: Cookie`` is written into the header directly: Flask adds it through werkzeug's
        parsed header set, parsed and written again twice for a new visitor, more work than the cookie."""
        if not session:  # never used, or emptied (a logout): Flask's own rules
            super().save_session(app, session, response)
            return
        if session.accessed:
            _vary_on_cookie(response)
        if not self.should_set_cookie(app, session):
            return
        value = self.get_signing_serializer(app).dumps(dict(session))  # type: ignore[union-attr]
        response.set_cookie(
            self.get_cookie_name(app), value,
            expires=self.get_expiration_time(app, session), httponly=self.get_cookie_httponly(app),
            domain=self.get_cookie_domain(app), path=self.get_cookie_path(app), secure=self.get_cookie_secure(app),
            partitioned=self.get_cookie_partitioned(app), samesite=self.get_cookie_samesite(app))
        _vary_on_cookie(response)


def _vary_on_cookie(response: Response) -> None:
    vary = response.headers.get("Vary")
    if not vary:
        response.headers["Vary"] = "Cookie"
    elif "cookie" not in (part.strip().lower() for part in vary.split(",")):
        response.headers["Vary"] = f"{vary}, Cookie"
