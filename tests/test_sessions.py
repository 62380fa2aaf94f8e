"""The organisers' session cookie: signed as Flask signs it, left uncompressed when zlib cannot shorten it. A
visitor signing, confirming or withdrawing is given no cookie at all."""

from __future__ import annotations

import base64
import re
import json
import zlib

import pytest
from flask.sessions import SecureCookieSessionInterface

from petition import create_app

from conftest import SAME_ORIGIN, links_in, run_sender, submit

SHORT = {"csrf_token": "5899ecfbdfa8915a62b041ac4b28668499f4e3aa"}  # the login page's session
LONG = {"_fresh": True, "_id": "ab" * 64, "_user_id": "12", **SHORT}  # a logged-in organiser's
PASSWORD = "correct horse battery staple"


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


def test_a_short_session_is_not_compressed_but_a_logged_in_organisers_is(make_app, monkeypatch):
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
    """An organiser's login page, login, dashboard, and a session emptied, answered by ours and by Flask's own
    interface."""
    from flask import session

    from petition import accounts

    @app.get("/forget")
    def forget():
        session.clear()
        return "forgotten"

    with app.app_context():
        accounts.add("organiser@example.org", PASSWORD)

    def visit() -> list:
        client = app.test_client()
        page = client.get("/organisers/login")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
        posted = client.post("/organisers/login", data={"csrf_token": token, "email": "organiser@example.org",
                                                        "password": PASSWORD})
        assert posted.status_code == 303
        answers = [page, posted, client.get("/organisers/"), client.get("/organisers/"), client.get("/forget"),
                   client.get("/forget")]
        return [(r.headers.get("Vary"), [re.sub(r"^session=[^;]+", "session=…", c) for c in r.headers.getlist(
            "Set-Cookie")]) for r in answers]

    seen = [visit()]
    app.session_interface = SecureCookieSessionInterface()
    seen.append(visit())
    assert seen[0] == seen[1]
    assert seen[0][0] == ("Cookie", ["session=…; HttpOnly; Path=/; SameSite=Lax"])
    assert seen[0][1][1] == ["session=…; HttpOnly; Path=/; SameSite=Lax"]  # logged in: written again
    # The session was renewed at login: its first page mints a new CSRF token, and writes it once.
    assert seen[0][2] == ("Cookie", ["session=…; HttpOnly; Path=/; SameSite=Lax"])
    assert seen[0][3] == ("Cookie", [])  # read, not written again
    assert seen[0][4][1][0].startswith("session=; Expires=Thu, 01 Jan 1970")  # emptied: removed


def test_no_answer_on_a_visitors_path_sets_a_cookie(app, mailbox):
    """Signing, confirming, managing and withdrawing, and the count: nothing is ever left in the browser."""
    client = app.test_client()
    fragment = {**SAME_ORIGIN, "X-Petition-Fragment": "1"}
    answers = {
        "post": submit(client),
        "post refused": submit(client, email="not-an-address"),
        "post in place": submit(client, headers=fragment, email="in-place@example.org"),
        "post in place refused": submit(client, headers=fragment, email="not-an-address"),
        "post cross-site": submit(client, headers={"Sec-Fetch-Site": "cross-site"}),
    }
    run_sender(app, mailbox)
    confirm = links_in(mailbox.messages[0])["confirm"]
    answers["confirm page"] = client.get(confirm)
    answers["confirm"] = client.post(confirm, headers=SAME_ORIGIN)
    answers["confirmed"] = client.get(answers["confirm"].headers["Location"])
    answers["used link"] = client.get(confirm)
    run_sender(app, mailbox)
    manage = links_in(mailbox.messages[-1])["manage"]
    answers["manage page"] = client.get(manage)
    answers["count"] = client.get("/api/petitions/vadim-kuramshin")
    answers["withdraw"] = client.post(manage, headers=SAME_ORIGIN)
    answers["withdrawn"] = client.get(answers["withdraw"].headers["Location"])
    assert {name: r.status_code for name, r in answers.items()} == {
        "post": 303, "post refused": 422, "post in place": 200, "post in place refused": 422, "post cross-site": 403,
        "confirm page": 200, "confirm": 303, "confirmed": 200, "used link": 404, "manage page": 200, "count": 200,
        "withdraw": 303, "withdrawn": 200}
    for name, response in answers.items():
        assert "Set-Cookie" not in response.headers, name
