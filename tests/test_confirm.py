"""Confirmation and 'manage my signature' links: signed, expiring, and only a POST changes anything."""

from __future__ import annotations

import re

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from petition import tokens
from petition.extensions import db
from petition.models import CONFIRMED, PENDING, OutboxMessage, Signature

from conftest import submit

TOKEN_FIELD = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def signed_up(app, client, **fields) -> Signature:
    assert submit(client, **fields).status_code == 303
    with app.app_context():
        signature = db.session.scalars(select(Signature).order_by(Signature.id.desc())).first()
        db.session.expunge(signature)
        return signature


def link(app, signature: Signature, purpose: str, slug: str = "vadim-kuramshin") -> str:
    with app.app_context():
        return f"/petitions/{slug}/{purpose}/{tokens.make(signature, purpose)}"


def press(client, path: str):
    page = client.get(path)
    return client.post(path, data={"csrf_token": TOKEN_FIELD.search(page.get_data(as_text=True)).group(1)})


def status_of(app, signature_id: int) -> str | None:
    with app.app_context():
        row = db.session.get(Signature, signature_id)
        return row.status if row else None


def test_get_shows_a_button_and_changes_nothing(app, client):
    signature = signed_up(app, client)
    path = link(app, signature, tokens.CONFIRM)
    for _ in range(3):  # scanners may fetch a link several times
        page = client.get(path)
        assert page.status_code == 200
        assert "Confirm my signature</button>" in page.get_data(as_text=True)
    assert status_of(app, signature.id) == PENDING


def test_the_post_confirms_once_and_a_second_press_is_harmless(app, client):
    signature = signed_up(app, client)
    path = link(app, signature, tokens.CONFIRM)
    response = press(client, path)
    assert response.status_code == 303 and response.headers["Location"].endswith("/confirmed")
    assert status_of(app, signature.id) == CONFIRMED
    again = client.get(path)
    assert "already confirmed" in again.get_data(as_text=True)
    with app.app_context():
        first_time = db.session.get(Signature, signature.id).confirmed_at
    assert first_time is not None


def test_confirming_without_the_csrf_token_is_refused(app, client):
    signature = signed_up(app, client)
    response = client.post(link(app, signature, tokens.CONFIRM))
    assert response.status_code == 400
    assert status_of(app, signature.id) == PENDING


def test_a_tampered_or_foreign_token_is_refused(app, client):
    signature = signed_up(app, client)
    path = link(app, signature, tokens.CONFIRM)
    assert client.get(path[:-3] + "abc").status_code == 404
    manage_as_confirm = link(app, signature, tokens.MANAGE).replace("/manage/", "/confirm/")
    assert client.get(manage_as_confirm).status_code == 404  # a link works for its own purpose only
    with app.app_context():
        forged = URLSafeTimedSerializer("another key", salt="petition-confirm").dumps([signature.id, signature.nonce])
    assert client.get(f"/petitions/vadim-kuramshin/confirm/{forged}").status_code == 404
    assert client.get(link(app, signature, tokens.CONFIRM, slug="closed-one")).status_code == 404
    assert status_of(app, signature.id) == PENDING


def test_an_expired_link_says_so(app, client, monkeypatch):
    signature = signed_up(app, client)
    path = link(app, signature, tokens.CONFIRM)
    monkeypatch.setitem(app.config, "CONFIRM_DAYS", 0)
    monkeypatch.setattr(tokens, "max_age", lambda purpose: -1)
    response = client.get(path)
    assert response.status_code == 410
    assert "This link has expired" in response.get_data(as_text=True)


def test_manage_shows_what_is_stored_and_withdraw_deletes_it(app, client):
    signature = signed_up(app, client, comment="Free him & all > now", updates="y")
    path = link(app, signature, tokens.MANAGE)
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    for shown in ("Вадим Курамшин", "supporter@example.org", "Kazakhstan", "Astana", "Free him &amp; all &gt; now"):
        assert shown in html
    response = press(client, path)
    assert response.status_code == 303 and response.headers["Location"].endswith("/withdrawn")
    assert status_of(app, signature.id) is None
    with app.app_context():
        assert db.session.scalars(select(OutboxMessage)).all() == []  # queued mail goes with it
    assert client.get(path).status_code == 404  # the link dies with the signature
    assert submit(client).status_code == 303  # and the signer may sign again


def test_a_link_never_reaches_a_later_signature_that_reuses_the_id(app, client):
    signature = signed_up(app, client)
    old_link = link(app, signature, tokens.MANAGE)
    press(client, old_link)
    newcomer = signed_up(app, client, email="newcomer@example.org")
    with app.app_context():  # make the newcomer take the withdrawn row's id, as SQLite may
        db.session.execute(db.delete(OutboxMessage))
        db.session.execute(db.update(Signature).where(Signature.id == newcomer.id).values(id=signature.id))
        db.session.commit()
    response = client.get(old_link)
    assert response.status_code == 404
    assert "newcomer@example.org" not in response.get_data(as_text=True)


@pytest.mark.parametrize("purpose", [tokens.CONFIRM, tokens.MANAGE])
def test_garbage_tokens_never_cause_a_server_error(client, purpose):
    for garbage in ("", "x", "a.b.c", "%00", "' OR 1=1 --", "ü" * 300, "e30.e30.e30"):
        response = client.get(f"/petitions/vadim-kuramshin/{purpose}/{garbage}")
        assert response.status_code in (404, 308), (garbage, response.status_code)
