"""The sign form and its POST: validation with hostile input, duplicates, closed petitions."""

from __future__ import annotations

import re
import sqlite3

import pytest
from sqlalchemy import func, select

from petition.extensions import db
from petition.models import PENDING, OutboxMessage, Signature

from conftest import VALID, csrf_token, submit

SIGN = "/petitions/vadim-kuramshin/sign"


def signatures(app) -> list[Signature]:
    with app.app_context():
        rows = db.session.scalars(select(Signature).order_by(Signature.id)).all()
        db.session.expunge_all()
        return rows


def outbox(app) -> list[tuple[int, str]]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            select(OutboxMessage.signature_id, OutboxMessage.kind).order_by(OutboxMessage.id))]


def test_the_form_has_every_field_with_a_real_label(client):
    page = client.get(SIGN)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Urgent action for Vadim Kuramshin" in html
    assert "Release Vadim Kuramshin" in html  # the petition text, rendered from Markdown
    for name in ("name", "email", "country", "postcode", "comment", "public", "updates", "csrf_token"):
        assert f'name="{name}"' in html, name
    for name in ("name", "email", "country", "postcode", "comment", "public", "updates"):
        assert f'<label for="{name}">' in html, name
    assert '<option value="KZ">Kazakhstan</option>' in html
    assert re.search(r'<input[^>]*name="public"(?![^>]*checked)', html)  # off by default
    assert re.search(r'<input[^>]*name="updates"(?![^>]*checked)', html)
    assert 'href="/privacy/"' in html
    assert "<script" not in html


def test_a_valid_signature_is_stored_pending_with_its_email_queued(app, client):
    response = submit(client, email="  Supporter@Example.ORG ", public="y")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/petitions/vadim-kuramshin/thanks")
    [signature] = signatures(app)
    assert signature.status == PENDING
    assert signature.name == "Вадим Курамшин"
    assert signature.email == "Supporter@example.org"
    assert signature.email_canonical == "supporter@example.org"
    assert signature.country == "KZ" and signature.postcode == "Astana"
    assert signature.public is True and signature.updates is False
    assert outbox(app) == [(signature.id, "confirm")]
    thanks = client.get(response.headers["Location"])
    assert thanks.status_code == 200 and "Check your e-mail" in thanks.get_data(as_text=True)


def test_a_repeat_signer_sees_the_same_page_and_only_the_mailbox_learns(app, client):
    first = submit(client)
    second = submit(client, email="SUPPORTER@example.org", name="Someone Else")
    assert (first.status_code, first.headers["Location"]) == (second.status_code, second.headers["Location"])
    assert first.get_data() == second.get_data()
    assert len(signatures(app)) == 1
    assert signatures(app)[0].name == "Вадим Курамшин"  # the repeat changed nothing stored
    assert [kind for _, kind in outbox(app)] == ["confirm", "confirm"]  # pending: the link again

    with app.app_context():
        db.session.execute(db.update(Signature).values(status="confirmed"))
        db.session.commit()
    submit(client)
    assert [kind for _, kind in outbox(app)] == ["confirm", "confirm", "already_signed"]


def test_one_signature_cannot_trigger_more_than_the_mail_cap(app, client):
    for _ in range(6):
        assert submit(client).status_code == 303
    assert len(outbox(app)) == app.config["MAILS_PER_SIGNATURE"] == 3
    assert signatures(app)[0].mails_sent == 3


def test_the_same_address_may_sign_another_petition(app, client, petitions_dir):
    with app.app_context():
        from petition import catalogue

        (petitions_dir / "second.md").write_text(
            "---\nslug: second\ntitle: Second\ntarget: T\nsummary: S\ngoal: 5\nopens: 2020-01-01\n"
            "closes: 2999-01-01\n---\nText\n", encoding="utf-8")
        catalogue.sync(petitions_dir)
    assert submit(client).status_code == 303
    assert submit(client, slug="second").status_code == 303
    assert len(signatures(app)) == 2


HOSTILE = [
    ({"name": ""}, "Enter your full name."),
    ({"name": "   "}, "Enter your full name."),
    ({"name": "x" * 101}, "at most 100 characters"),
    ({"name": "Vadim\x00Kuramshin"}, "control character (U+0000)"),
    ({"name": "Vadim\nKuramshin"}, "control character (U+000A)"),
    ({"name": "\u202eniseht"}, "control character (U+202E)"),
    ({"email": ""}, "Enter your e-mail address."),
    ({"email": "not-an-address"}, "Enter a valid e-mail address"),
    ({"email": "a@" + "b" * 300 + ".org"}, "at most 254 characters"),
    ({"email": "=HYPERLINK(\"http://x\")@example.org"}, "cannot start with =, +, - or @"),
    ({"country": ""}, "Choose your country."),
    ({"country": "XX"}, "Choose your country from the list."),
    ({"country": "<script>"}, "Choose your country from the list."),
    ({"postcode": "9" * 41}, "at most 40 characters"),
    ({"comment": "c" * 501}, "501 characters long; at most 500"),
    ({"comment": "tab\tok but bell\x07 not"}, "control character (U+0007)"),
]


@pytest.mark.parametrize("fields, message", HOSTILE)
def test_each_rule_refuses_hostile_input_with_its_own_message(app, client, fields, message):
    response = submit(client, **fields)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in html
    assert 'role="alert"' in html and "<title>Error: " in html
    assert signatures(app) == [] and outbox(app) == []


def test_entered_values_are_kept_and_escaped_when_the_form_is_refused(client):
    response = submit(client, name="<script>alert(1)</script>", email="bad", comment="=1+2")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "=1+2</textarea>" in html
    assert 'aria-invalid="true"' in html and 'aria-describedby="email-hint email-error"' in html


@pytest.mark.parametrize("fields, message", [
    ({"name": "<b>Bold</b>"}, "cannot contain HTML tags"),
    ({"comment": "<script>alert(1)</script>"}, "cannot contain HTML tags"),
    ({"postcode": "<img src=x onerror=alert(1)>"}, "cannot contain HTML tags"),
    ({"name": "=SUM(A1)"}, "cannot start with =, +, - or @"),
    ({"comment": "@cmd|' /C calc'!A0"}, "cannot start with =, +, - or @"),
    ({"postcode": "+1 555"}, "cannot start with =, +, - or @"),
])
def test_markup_and_formulas_are_refused(app, client, fields, message):
    response = submit(client, **fields)
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert signatures(app) == []


def test_ordinary_punctuation_is_welcome(app, client):
    assert submit(client, name="O'Brien-Smith", comment="Solidarity! 2 + 2 = 4; <3 from the union").status_code == 303
    assert signatures(app)[0].comment == "Solidarity! 2 + 2 = 4; <3 from the union"


@pytest.mark.parametrize("name", [b"Vad\xffim", b"Vad%FFim", b"%C3%28"])
def test_invalid_utf8_is_refused_with_a_clear_message(app, client, name):
    token = csrf_token(client, SIGN)
    body = f"csrf_token={token}&email=a%40example.org&country=KZ&name=".encode() + name
    response = client.post(SIGN, data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "not valid UTF-8 text" in response.get_data(as_text=True)
    assert signatures(app) == []


def test_an_oversized_body_is_refused_before_it_is_read(app, client):
    token = csrf_token(client, SIGN)
    response = client.post(SIGN, data={**VALID, "csrf_token": token, "comment": "x" * 10_000_000})
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)
    assert signatures(app) == []


def test_a_post_without_the_csrf_token_is_refused(app, client):
    response = client.post(SIGN, data=VALID)
    assert response.status_code == 400
    assert "Your form has expired" in response.get_data(as_text=True)
    assert signatures(app) == []


def test_a_post_with_another_sessions_token_is_refused(app, client):
    token = csrf_token(app.test_client(), SIGN)
    response = client.post(SIGN, data={**VALID, "csrf_token": token})
    assert response.status_code == 400
    assert signatures(app) == []


@pytest.mark.parametrize("slug, status, words", [
    ("closed-one", 410, "This petition is closed"),
    ("future-one", 409, "This petition is not open yet"),
])
def test_a_petition_outside_its_dates_refuses_signatures_and_shows_its_count(app, client, slug, status, words):
    page = client.get(f"/petitions/{slug}/sign")
    assert page.status_code == status
    html = page.get_data(as_text=True)
    assert words in html and "0</strong>" in html and 'name="email"' not in html
    token = csrf_token(client, SIGN)
    posted = client.post(f"/petitions/{slug}/sign", data={**VALID, "csrf_token": token})
    assert posted.status_code == status
    assert signatures(app) == []


def test_an_unknown_petition_is_a_clear_404(client):
    response = client.get("/petitions/nobody/sign")
    assert response.status_code == 404
    assert "There is no petition at this address." in response.get_data(as_text=True)


def test_a_wrong_method_is_a_405_page_not_a_crash(client):
    response = client.put(SIGN)
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]


def test_pages_are_never_cached_and_carry_security_headers(client):
    response = client.get(SIGN)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_the_signing_request_only_inserts(app, client):
    """No shared row is written when signing: only INSERTs into signature and outbox (on PostgreSQL both in
    one statement)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    statements: list[str] = []
    traced: list[sqlite3.Connection] = []
    token = csrf_token(client, SIGN)

    def record(statement: str) -> None:
        statements.append(" ".join(statement.split()).upper())

    def record_execute(conn, cursor, statement, *args):
        if conn.dialect.name != "sqlite":
            record(statement)

    def trace(dbapi_connection, connection_record, proxy):
        # SQLite's signing write runs on the driver's cursor, past SQLAlchemy's events: ask SQLite itself.
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(record)
            traced.append(dbapi_connection)

    # Every engine: the signing writes have their own.
    event.listen(Engine, "before_cursor_execute", record_execute)
    event.listen(Engine, "checkout", trace)
    try:
        assert client.post(SIGN, data={**VALID, "csrf_token": token}).status_code == 303
    finally:
        event.remove(Engine, "before_cursor_execute", record_execute)
        event.remove(Engine, "checkout", trace)
        for connection in traced:
            connection.set_trace_callback(None)
    assert not [s for s in statements if "UPDATE " in s or "DELETE " in s], statements
    inserts = [table for s in statements for table in re.findall(r"INSERT INTO (\w+)", s)]
    assert inserts == ["SIGNATURE", "OUTBOX"], statements
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Signature)) == 1
