"""Organiser sessions end for good: a copied session cookie stops working after logout, a new password and
disabling; the session and its CSRF token are new at login; failed logins are limited per account, from
whatever addresses, without telling which accounts exist."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from petition import accounts, hashing, ratelimits
from petition.extensions import db
from petition.models import Petition

from conftest import csrf_token
from test_organisers import PASSWORD, action, log_in

DASHBOARD = "/organisers/"


@pytest.fixture
def organiser(app):
    with app.app_context():
        accounts.add("organiser@example.org", PASSWORD)
    return "organiser@example.org"


def copy_of(app, client):
    """Another browser holding a copy of ``client``'s session cookie, as someone who stole it would."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def logged_out(response) -> bool:
    return response.status_code == 302 and "/organisers/login" in response.headers["Location"]


@pytest.fixture
def office(client, organiser):
    assert log_in(client, organiser).status_code == 303
    return client


# ---------------------------------------------------------------- sessions end


def test_a_copied_cookie_stops_working_after_logout_on_every_device(app, office, organiser):
    copied = copy_of(app, office)
    other_device = app.test_client()
    assert log_in(other_device, organiser).status_code == 303
    assert copied.get(DASHBOARD).status_code == 200  # the copy works while the session lasts
    assert other_device.get(DASHBOARD).status_code == 200
    assert action(office, "/organisers/logout").status_code == 303
    assert logged_out(office.get(DASHBOARD))
    assert logged_out(copied.get(DASHBOARD))
    assert logged_out(other_device.get(DASHBOARD))  # logout ends every session of that organiser
    assert log_in(office, organiser).status_code == 303 and office.get(DASHBOARD).status_code == 200


@pytest.mark.parametrize("command", [["reset-password", "--generate"], ["disable"]])
def test_a_copied_cookie_stops_working_after_a_new_password_or_disabling(app, office, organiser, runner,
                                                                          command):
    copied = copy_of(app, office)
    assert copied.get(DASHBOARD).status_code == 200
    result = runner.invoke(args=["organiser", command[0], organiser, *command[1:]])
    assert result.exit_code == 0, result.output
    assert logged_out(copied.get(DASHBOARD))
    assert logged_out(office.get(DASHBOARD))
    if command[0] == "disable":  # enabled again with a new password: the old sessions stay ended
        assert runner.invoke(args=["organiser", "reset-password", organiser, "--generate"]).exit_code == 0
        assert logged_out(copied.get(DASHBOARD))


def test_a_session_cookie_without_the_current_key_logs_nobody_in(app, office, organiser):
    """The key is checked on every request, not only at login: replacing it in the database ends the session."""
    with app.app_context():
        accounts.end_sessions(accounts.find(organiser))
    assert logged_out(office.get(DASHBOARD))


def test_the_session_and_its_csrf_token_are_new_after_login(app, client, organiser):
    before = csrf_token(client, "/organisers/login")
    anonymous_cookie = client.get_cookie("session").value
    response = client.post("/organisers/login", data={"csrf_token": before, "email": organiser,
                                                      "password": PASSWORD})
    assert response.status_code == 303
    assert client.get_cookie("session").value != anonymous_cookie
    close = "/organisers/petitions/vadim-kuramshin/close"
    assert client.post(close, data={"csrf_token": before}).status_code == 400  # the token from before login
    with app.app_context():
        assert db.session.scalar(select(Petition.closed_early_at).where(Petition.slug == "vadim-kuramshin")) is None
    after = csrf_token(client, DASHBOARD)
    assert after != before
    assert client.post(close, data={"csrf_token": after}).status_code == 303
    with app.app_context():
        assert db.session.scalar(select(Petition.closed_early_at).where(Petition.slug == "vadim-kuramshin"))


# ---------------------------------------------------------------- failed logins per account


def attempt(app, email: str, password: str, address: str):
    """A login from a browser of its own at ``address``: each address tries a few times only, far below the
    per-address limit."""
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    token = csrf_token(browser, "/organisers/login")
    response = browser.post("/organisers/login", data={"csrf_token": token, "email": email,
                                                       "password": password})
    return response, browser


def without_tokens(response) -> str:
    return re.sub(r'value="[^"]+"', "", response.get_data(as_text=True))


def test_failed_logins_are_limited_per_account_from_any_address(app, organiser, monkeypatch):
    with app.app_context():
        accounts.add("colleague@example.org", PASSWORD)
    checked = []
    real_check = accounts.check_password_hash
    monkeypatch.setattr(accounts, "check_password_hash", lambda *args: checked.append(1) or real_check(*args))

    answers = {}
    for n, email in enumerate((organiser, "nobody@example.org")):
        statuses = [attempt(app, email, "wrong password, try again", f"198.51.{n}.{k}")[0].status_code
                    for k in range(5)]
        assert statuses == [401] * 5
        tries = len(checked)
        refused, _ = attempt(app, email.upper(), "wrong password, try again", f"198.51.{n}.99")
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 61
        assert len(checked) == tries  # while refused, no password is checked
        answers[email] = refused

    # Known and unknown accounts get the same refusal, word for word.
    assert without_tokens(answers[organiser]) == without_tokens(answers["nobody@example.org"])
    assert "Too many failed logins with this e-mail address." in answers[organiser].get_data(as_text=True)

    right, browser = attempt(app, organiser, PASSWORD, "203.0.113.1")  # the right password, while paused
    assert right.status_code == 429 and logged_out(browser.get(DASHBOARD))
    other, browser = attempt(app, "colleague@example.org", PASSWORD, "198.51.0.1")  # another account
    assert other.status_code == 303 and browser.get(DASHBOARD).status_code == 200

    with app.app_context():
        keys = list(ratelimits.current().memory.storage)
        expected = {hashing.keyed(email) for email in (organiser, "nobody@example.org")}
    assert keys and not [key for key in keys if "@" in key or "example" in key]
    assert {key.split("/")[2] for key in keys if "/login-account/" in key} == expected
