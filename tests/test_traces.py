"""No trace of who signed in the side stores and logs: the rate-limit store (a real Redis) and the log of a
whole signing session, a 503 and a 500 hold no client address, e-mail address or link token."""

from __future__ import annotations

import io
import logging
import re
import sqlite3

import pytest
from sqlalchemy import select

from petition import create_app, logs, signing
from petition.extensions import db
from petition.models import Signature

from conftest import SAME_ORIGIN, links_in, run_sender, submit

CLIENT = "203.0.113.66"
EMAIL = "trace.me@example.org"
NAME = "Жанна Трасова"
OWN = ("petition",)  # loggers whose lines must name no one even before the filter


@pytest.fixture
def captured():
    """The root logger's output, through the same redacting handler the commands install."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(logs.Redact())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    own = Own()
    for name in OWN:
        logging.getLogger(name).addHandler(own)
    buffer.own = own.lines  # type: ignore[attr-defined]
    yield buffer
    for name in OWN:
        logging.getLogger(name).removeHandler(own)
    root.removeHandler(handler)
    root.setLevel(level)


class Own(logging.Handler):
    """Messages as the service wrote them, before any filter: they must name no one by themselves."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class Held:
    """Another connection holding the database so that the service's write waits, then gives up: a real
    lock, on either engine."""

    def __init__(self, app) -> None:
        self.url = app.config["SQLALCHEMY_DATABASE_URI"]

    def __enter__(self):
        if self.url.startswith("sqlite"):
            self.connection = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
            self.connection.execute("BEGIN IMMEDIATE")
        else:
            import psycopg

            self.connection = psycopg.connect(self.url.replace("postgresql+psycopg", "postgresql"))
            self.connection.execute("LOCK TABLE signature IN ACCESS EXCLUSIVE MODE")
        return self

    def __exit__(self, *exc) -> None:
        self.connection.rollback()
        self.connection.close()


def test_a_signing_session_a_503_and_a_500_leave_no_address_e_mail_or_token(app, mailbox, redis_url, captured,
                                                                           monkeypatch):
    sqlite = app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
    # Writes give up after a fraction of a second, so that a held lock turns into a 503 at once.
    engine_options = {"connect_args": {"timeout": 0.3} if sqlite else {"options": "-c lock_timeout=300"}}
    served = create_app({**app.config, "RATELIMIT_STORAGE_URI": redis_url,
                         "SQLALCHEMY_ENGINE_OPTIONS": engine_options})
    client = served.test_client()
    client.environ_base["REMOTE_ADDR"] = CLIENT

    assert submit(client, name=NAME, email=EMAIL, comment="Free them").status_code == 303
    assert run_sender(served, mailbox) == (1, 0)
    confirm = links_in(mailbox.messages[-1])["confirm"]
    assert client.get(confirm).status_code == 200
    assert client.post(confirm, headers=SAME_ORIGIN).status_code == 303
    run_sender(served, mailbox)
    manage = links_in(mailbox.messages[-1])["manage"]
    assert EMAIL in client.get(manage).get_data(as_text=True)

    with Held(served):  # withdrawing while the database is held: busy, try again
        busy = client.post(manage, headers=SAME_ORIGIN)
    assert busy.status_code == 503 and busy.headers["Retry-After"]

    def failing(signature):  # a fault whose message names the signer and the link, as a driver's might
        raise RuntimeError(f"could not withdraw {signature.email} at {manage}")

    monkeypatch.setattr(signing, "withdraw", failing)
    assert client.post(manage, headers=SAME_ORIGIN).status_code == 500
    monkeypatch.undo()
    assert client.post(manage, headers=SAME_ORIGIN).status_code == 303  # withdrawn after all
    with served.app_context():
        assert db.session.scalars(select(Signature)).all() == []

    # Login refused past the per-address limit: one line, by route.
    for n in range(11):
        page = client.get("/organisers/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        answer = client.post("/organisers/login", data={"csrf_token": token, "email": f"guess{n}@example.org",
                                                        "password": "not the password"})
    assert answer.status_code == 429

    log = captured.getvalue()
    assert "organisers.login answered 429" in log
    assert any("organisers.login answered 429" in line for line in captured.own)
    # The log says what happened, by route...
    assert "visitors.manage answered 503" in log and "visitors.manage answered 500" in log
    assert "RuntimeError" in log
    # ...and nothing of who: no address, no e-mail, no token, not even inside the traceback.
    tokens = [confirm.rsplit("/", 1)[1], manage.rsplit("/", 1)[1]]
    for trace in (CLIENT, EMAIL, NAME, *tokens):
        assert trace not in log, trace
        assert not any(trace in line for line in captured.own), trace  # not even before the filter
    assert any("answered 503" in line for line in captured.own)

    import redis

    keys = [key.decode() for key in redis.Redis.from_url(redis_url).keys("*")]
    assert any("sign-soft" in key for key in keys) and any("sign-hard" in key for key in keys)  # counted there
    for key in keys:
        assert CLIENT not in key and EMAIL not in key, key


def test_the_redacting_filter_covers_what_other_code_writes():
    lines = [
        "Exception while serving /petitions/vadim-kuramshin/manage/Zm9vYmFyYmF6cXV4MTIz",  # a server's line
        "GET http://campaign.example/petitions/x/confirm/abc-DEF_123 from 198.51.100.4",
        "[parameters: ('someone@example.org', 'x')]",  # a database error's
        "client: 2001:db8::7, request: \"POST /petitions/x/sign HTTP/1.1\"",
        "peer fe80::1%eth0 and ::ffff:192.0.2.1",
    ]
    redacted = [logs.redact(line) for line in lines]
    for secret in ("Zm9vYmFyYmF6cXV4MTIz", "abc-DEF_123", "198.51.100.4", "someone@example.org", "2001:db8::7",
                   "fe80::1", "192.0.2.1"):
        assert not any(secret in line for line in redacted), secret
    assert redacted[0] == "Exception while serving /petitions/vadim-kuramshin/manage/[token]"
    # What names no one is kept: times, versions, the service's own loopback address.
    for kept in ("closed at 12:30:05", "alembic 1.13.2", "Serving on http://127.0.0.1:8000"):
        assert logs.redact(kept) == kept
