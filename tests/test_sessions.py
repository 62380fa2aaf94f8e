"""The session cookie and the CSRF token: signed as Flask and Flask-WTF sign them, left uncompressed when zlib
cannot shorten them."""

from __future__ import annotations

import base64
import re
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


def test_plain_sessions_are_written_as_flasks_own_and_tagged_values_keep_their_types(make_app):
    from datetime import datetime, timezone

    from markupsafe import Markup

    app = make_app()
    ours, flasks = serializers(app)
    assert ours.load_payload(ours.dump_payload(LONG | {"z": "ü"})) == LONG | {"z": "ü"}  # a boolean: tagged
    with app.app_context():  # where Flask writes its cookies, with the app's JSON settings
        for session in (SHORT, {"b": "two", "a": "ünïcode"}):
            payload = ours.dump_payload(session)
            assert base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)) == \
                flasks.serializer.dumps(session).encode()  # the same bytes as Flask's own
    tagged = {"m": Markup("<b>x</b>"), "when": datetime(2026, 12, 2, tzinfo=timezone.utc), " t": "not a tag"}
    for session in (tagged, {" t": ["a", "b"]}):
        assert flasks.loads(ours.dumps(session)) == session
    assert isinstance(ours.loads(ours.dumps(tagged))["m"], Markup)


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


def test_the_sign_pages_csrf_token_is_flask_wtfs_without_zlib(make_app, monkeypatch):
    from flask import g, session
    from flask_wtf.csrf import generate_csrf, validate_csrf
    from itsdangerous import URLSafeTimedSerializer, url_safe
    from wtforms import ValidationError

    from petition.sessions import csrf_token

    app = make_app()
    calls, compress = [], zlib.compress
    monkeypatch.setattr(url_safe.zlib, "compress", lambda data: calls.append(data) or compress(data))
    with app.test_request_context("/petitions/p/sign"):
        token = csrf_token()
        assert calls == []
        assert not token.startswith(".")
        assert csrf_token() == token and generate_csrf() == token == g.csrf_token  # one token per request
        raw = session["csrf_token"]
        assert len(raw) == 40
        # Flask-WTF's own check and serializer take it.
        validate_csrf(token)
        assert URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").loads(token) == raw
    with app.test_request_context("/petitions/p/sign"):
        session["csrf_token"] = raw  # the next page of the same visitor: same raw token, freshly signed
        again = csrf_token()
        validate_csrf(again)
        session["csrf_token"] = "another visitor's"
        with pytest.raises(ValidationError, match="do not match"):
            validate_csrf(again)


def test_signers_and_their_derived_keys_are_made_once(make_app, monkeypatch):
    from itsdangerous.signer import Signer

    ours, flasks = serializers(make_app())
    derived, derive = [], Signer.derive_key
    monkeypatch.setattr(Signer, "derive_key", lambda self, key=None: derived.append(key) or derive(self, key))
    assert ours.make_signer() is ours.make_signer()
    cookies = [ours.dumps(SHORT) for _ in range(3)]
    assert [ours.loads(cookie) for cookie in cookies] == [SHORT] * 3
    assert len(derived) == 2  # once for signing, once for checking (by the key itself), then kept
    derived.clear()
    assert [flasks.loads(cookie) for cookie in cookies] == [SHORT] * 3  # Flask's own reads ours
    assert len(derived) == 3  # and derives its key for every read


def test_the_cookie_and_vary_headers_are_flasks_own(app):
    """A signer's GET and POST, and a session emptied, answered by ours and by Flask's own interface."""
    from flask import session

    from conftest import VALID

    @app.get("/forget")
    def forget():
        session.clear()
        return "forgotten"

    sign = "/petitions/vadim-kuramshin/sign"

    def visit() -> list:
        client = app.test_client()
        page = client.get(sign)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
        posted = client.post(sign, data={**VALID, "email": f"s{len(seen)}@example.org", "csrf_token": token})
        assert posted.status_code == 303
        answers = [page, posted, client.get("/forget"), client.get("/forget")]
        return [(r.headers.get("Vary"), [re.sub(r"^session=[^;]+", "session=…", c) for c in r.headers.getlist(
            "Set-Cookie")]) for r in answers]

    seen = []
    seen.append(visit())
    app.session_interface = SecureCookieSessionInterface()
    seen.append(visit())
    assert seen[0] == seen[1]
    assert seen[0][0] == ("X-Petition-Fragment, Cookie", ["session=…; HttpOnly; Path=/; SameSite=Lax"])
    assert seen[0][1][0] == "Cookie" and seen[0][1][1] == []  # read, not written again
    assert seen[0][2][1][0].startswith("session=; Expires=Thu, 01 Jan 1970")  # emptied: removed
