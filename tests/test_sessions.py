"""The session cookie: signed as Flask signs it, left uncompressed when zlib cannot shorten it."""

from __future__ import annotations

import base64
import json
import zlib

import pytest
from flask.sessions import SecureCookieSessionInterface

from petition import create_app

SHORT = {"csrf_token": "5899ecfbdfa8915a62b041ac4b28668499f4e3aa"}  # a signer's whole session
LONG = {"_fresh": True, "_id": "ab" * 64, "_user_id": "12", **SHORT}  # an organiser's


@pytest.fixture
def make_app(tmp_path):
    def make(**config):
        return create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "current key", "TESTING": True,
                           "SITE_DIR": str(tmp_path / "site"), **config})
    return make


def serializers(app):
    """Ours, and the one Flask's own session interface would use with the same keys."""
    with app.app_context():
        return (app.session_interface.get_signing_serializer(app),
                SecureCookieSessionInterface().get_signing_serializer(app))


def test_a_signers_session_is_not_compressed_but_an_organisers_is(make_app, monkeypatch):
    from itsdangerous import url_safe

    ours, _ = serializers(make_app())
    calls, compress = [], zlib.compress
    monkeypatch.setattr(url_safe.zlib, "compress", lambda data: calls.append(data) or compress(data))
    short = ours.dumps(SHORT)
    assert calls == []  # not even tried: it would only grow
    long = ours.dumps(LONG)
    assert len(calls) == 1
    assert not short.startswith(".")  # a leading dot marks zlib
    payload = short.split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) == SHORT
    assert long.startswith(".")
    assert ours.loads(short) == SHORT and ours.loads(long) == LONG


def test_cookies_pass_between_ours_and_flasks_own_either_way(make_app):
    ours, flasks = serializers(make_app())
    for session in (SHORT, LONG):
        assert ours.loads(flasks.dumps(session)) == session  # cookies set before this release
        assert flasks.loads(ours.dumps(session)) == session  # and a rollback keeps its visitors' sessions


def test_a_fallback_key_still_reads_old_cookies_and_the_current_key_signs(make_app):
    old, _ = serializers(make_app(SECRET_KEY="old key"))
    ours, _ = serializers(make_app(SECRET_KEY_FALLBACKS=["old key"]))
    _, current_only = serializers(make_app())
    assert ours.loads(old.dumps(LONG)) == LONG
    assert current_only.loads(ours.dumps(SHORT)) == SHORT


def test_a_tampered_cookie_is_refused(make_app):
    from itsdangerous import BadSignature

    ours, _ = serializers(make_app())
    token = ours.dumps(SHORT)
    forged = base64.urlsafe_b64encode(json.dumps({"csrf_token": "0" * 40}).encode()).decode().rstrip("=")
    with pytest.raises(BadSignature):
        ours.loads(forged + token[token.index("."):])
