"""Malformed requests get a 4xx and at most one log line, never a 500 and a traceback."""

from __future__ import annotations

import logging

import pytest

from petition import accounts

from conftest import csrf_token
from test_organisers import PASSWORD

ORGANISER = "organiser@example.org"


def log_in_to(client, target: str):
    token = csrf_token(client, "/organisers/login")
    return client.post("/organisers/login", query_string={"next": target},
                       data={"csrf_token": token, "email": ORGANISER, "password": PASSWORD})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_login_leads_only_to_an_organiser_page_whatever_next_holds(app, caplog):
    with app.app_context():
        accounts.add(ORGANISER, PASSWORD)
    caplog.set_level(logging.INFO)
    refused = ["/organisers/\r\nSet-Cookie: stolen=1", "/organisers/\nLocation: https://evil.example",
               "/organisers/\x00", "//evil.example/organisers/", "https://evil.example/organisers/",
               "/organisers/\\\\evil.example", "/organisers/ é", "/organisers/" + "x" * 3000 + "\r", "/elsewhere"]
    for target in refused:
        client = app.test_client()
        answer = log_in_to(client, target)
        assert answer.status_code == 303, repr(target)
        assert answer.headers["Location"] == "/organisers/", repr(target)
        assert "Set-Cookie: stolen" not in str(answer.headers)
    client = app.test_client()
    kept = log_in_to(client, "/organisers/petitions/vadim-kuramshin?tab=held")
    assert kept.headers["Location"] == "/organisers/petitions/vadim-kuramshin?tab=held"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_malformed_service_paths_are_refused_with_a_4xx(app, client, caplog):
    caplog.set_level(logging.INFO)
    paths = ["/petitions/%00/confirm/x", "/petitions/vadim-kuramshin/confirm/%00", "/api/petitions/%00",
             "/api/petitions/" + "x" * 300, "/petitions/" + "x" * 300 + "/manage/" + "y" * 300,
             "/static/%00.css", "/static/" + "x" * 300 + ".css",
             "/static/..%2f..%2fpyproject.toml", "/petitions/vadim-kuramshin/confirm/%C0%AE%C0%AE",
             "/api/petitions/vadim-kuramshin.%ff"]
    for path in paths:
        answer = client.get(path)
        assert 400 <= answer.status_code < 500, (path, answer.status_code)
        assert "Traceback" not in answer.get_data(as_text=True)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert len(caplog.records) <= len(paths)  # at most one line each


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_id_past_any_row_is_a_404_not_a_500(app, client):
    with app.app_context():
        accounts.add(ORGANISER, PASSWORD)
    assert log_in_to(client, "/organisers/").status_code == 303
    token = csrf_token(client, "/organisers/")
    for path in ("/organisers/signatures/99999999999999999999999/erase",
                 "/organisers/signatures/2147483648/accept", "/organisers/signatures/99999999999999999999999/discard"):
        assert client.post(path, data={"csrf_token": token}).status_code == 404, path
    assert client.get("/organisers/signatures/99999999999999999999999/erase").status_code == 404
