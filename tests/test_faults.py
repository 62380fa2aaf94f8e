"""Faults: a busy or unreachable database answers 503 with Retry-After and loses nothing stored; a worker
killed mid-load or a dropped connection loses no accepted submission; backups restore what they hold."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from petition import create_app
from petition.extensions import db
from petition.models import Signature, Submission

from conftest import (SAME_ORIGIN, SHIPPED_PETITIONS, VALID, Browser, Mailbox, free_port, links_in, run_sender,
                      sign_and_confirm, submit, wait_until_serving)

SIGN = "/petitions/vadim-kuramshin/sign"
COUNT = "/api/petitions/vadim-kuramshin"


def count(app, model=Signature) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def emails_of(app, model) -> list[str]:
    with app.app_context():
        return sorted(db.session.scalars(select(model.email)))


def test_a_locked_sqlite_database_answers_503_then_recovers(tmp_path, petitions_dir):
    database = tmp_path / "busy.sqlite3"
    app = create_app({"INSTANCE_PATH": str(tmp_path / "i"), "SECRET_KEY": "k", "TESTING": True,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}", "PETITIONS_DIR": str(petitions_dir),
                      "SITE_DIR": str(tmp_path / "no-site"), "BASE_URL": "http://petition.test",
                      "COUNT_CACHE_SECONDS": 0,
                      "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"timeout": 0.2}}})
    with app.app_context():
        from flask_migrate import upgrade

        from petition import catalogue
        from petition.extensions import init_migrations

        init_migrations(app)
        upgrade()
        catalogue.sync(petitions_dir)
    client, mailbox = app.test_client(), Mailbox()
    sign_and_confirm(app, client, mailbox, email="stored@example.org")
    assert submit(client, email="waiting@example.org").status_code == 303
    run_sender(app, mailbox)
    waiting = links_in(mailbox.to("waiting@example.org")[0])["confirm"]
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    try:
        for busy in (submit(client, email="new@example.org"), client.post(waiting, headers=SAME_ORIGIN)):
            html = busy.get_data(as_text=True)
            assert busy.status_code == 503
            assert busy.headers["Retry-After"] == "10"
            assert "busy for a moment" in html and "Traceback" not in html
        assert client.get(COUNT).json["signature_count"] == 1  # readers go on (WAL)
        assert client.get(waiting).status_code == 200
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert emails_of(app, Signature) == ["stored@example.org"]  # nothing stored was lost
    assert emails_of(app, Submission) == ["waiting@example.org"]
    assert submit(client, email="new@example.org").status_code == 303  # the signer sends again
    assert client.post(waiting, headers=SAME_ORIGIN).status_code == 303
    assert emails_of(app, Signature) == ["stored@example.org", "waiting@example.org"]
    assert emails_of(app, Submission) == ["new@example.org"]


def test_an_unreachable_database_answers_503_with_retry_after(tmp_path):
    port = free_port()  # nothing listens there
    app = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "k", "SITE_DIR": str(tmp_path / "no-site"),
                      "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://nobody@127.0.0.1:{port}/none"
                                                 "?connect_timeout=2"})
    client = app.test_client()
    for page in (submit(client), client.get("/petitions/vadim-kuramshin/confirm/some-token"),
                 client.get("/petitions/vadim-kuramshin/confirmed")):
        assert page.status_code == 503 and page.headers["Retry-After"] == "10"
        assert "Service busy" in page.get_data(as_text=True)
    api = client.get(COUNT)
    assert api.status_code == 503 and api.json["status"] == 503


@pytest.mark.slow
def test_a_worker_killed_mid_load_loses_no_accepted_submission(app, database_url, tmp_path):
    """gunicorn, two workers, 160 signers from 4 threads; one worker gets SIGKILL part way.
    Every submission answered 303 must be in the database afterwards, and get its e-mail."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETITION_")}
    env.update({"PETITION_DATABASE_URL": database_url, "PETITION_SECRET_KEY": app.config["SECRET_KEY"],
                "PETITION_INSTANCE_PATH": str(tmp_path / "instance"), "PETITION_SITE_DIR": str(tmp_path / "no"),
                "PETITION_PETITIONS_DIR": str(SHIPPED_PETITIONS),
                "PETITION_SIGN_SOFT_LIMIT": "1000 per hour", "PETITION_SIGN_HARD_LIMIT": "1000 per hour"})
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen([str(gunicorn), "--workers", "2", "--bind", f"127.0.0.1:{port}", "--graceful-timeout",
                               "2", "petition:create_app()"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    accepted: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()
    try:
        wait_until_serving(Browser(base), "/api/petitions", server)

        def signer(thread: int) -> None:
            for n in range(40):
                email = f"t{thread}n{n}@example.org"
                try:
                    status, _, _ = Browser(base).request(SIGN, {**VALID, "email": email})
                except Exception:  # reset, truncated, refused: the worker died under it; a signer sends again
                    status = None
                with lock:
                    (accepted if status == 303 else refused).append(email)

        threads = [threading.Thread(target=signer, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(accepted) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        workers = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        assert len(workers) == 2
        os.kill(int(workers[0]), signal.SIGKILL)
        for thread in threads:
            thread.join(timeout=120)
        assert len(accepted) + len(refused) == 160
        assert len(accepted) >= 100  # the master replaced the worker and signing went on
    finally:
        server.terminate()
        server.wait(timeout=15)
    stored = emails_of(app, Submission)
    missing = [email for email in accepted if email not in stored]
    assert missing == []
    mailbox = Mailbox()
    run_sender(app, mailbox)
    assert all(len(mailbox.to(email)) == 1 for email in accepted)


def test_backup_and_restore(app, client, runner, tmp_path, mailbox):
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        result = runner.invoke(args=["backup", str(tmp_path / "b.sqlite3")])
        assert result.exit_code == 1 and "pg_dump" in result.output
        return
    for n in range(3):
        sign_and_confirm(app, client, mailbox, email=f"kept{n}@example.org")
    submit(client, email="waiting@example.org")  # not confirmed yet: its link must work after a restore
    run_sender(app, mailbox)
    waiting = links_in(mailbox.to("waiting@example.org")[0])["confirm"]
    target = tmp_path / "backup.sqlite3"
    result = runner.invoke(args=["backup", str(target)])
    assert result.exit_code == 0 and "Backed up 3 signatures" in result.output
    assert runner.invoke(args=["backup", str(target)]).exit_code == 1  # never overwrites
    sign_and_confirm(app, client, mailbox, email="after-the-backup@example.org")
    assert count(app) == 4

    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("hello")
    refused = runner.invoke(args=["restore", str(not_a_backup), "--yes"])
    assert refused.exit_code == 1 and "not an SQLite database" in refused.output
    assert count(app) == 4  # nothing lost by a refused restore

    result = runner.invoke(args=["restore", str(target)], input="y\n")
    assert result.exit_code == 0 and "Restored 3 signatures" in result.output
    assert emails_of(app, Signature) == [f"kept{n}@example.org" for n in range(3)]
    assert emails_of(app, Submission) == ["waiting@example.org"]
    assert client.get(COUNT).json["signature_count"] == 3
    assert client.post(waiting, headers=SAME_ORIGIN).status_code == 303  # the restored submission confirms
    assert submit(client, email="after-the-restore@example.org").status_code == 303  # and signing goes on
    assert emails_of(app, Submission) == ["after-the-restore@example.org"]
    assert client.get(COUNT).json["signature_count"] == 4


# ---------------------------------------------------------------- connections the database dropped

ON_POSTGRES = pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                                      indirect=True)


def on_the_side(app, sql: str) -> list:
    """A query on a connection of its own, outside the app's pools."""
    import psycopg

    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute(sql).fetchall()


def drop_pooled_connections(app) -> int:
    """What a restart of the database or an idle timeout does to the pool: every connection closed by the
    server. Returns how many there were."""
    return len(on_the_side(app, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))


@pytest.fixture
def pings(app, monkeypatch):
    """Every check of a pooled connection before its use."""
    made = []
    with app.app_context():
        for engine in db.engines.values():
            real = engine.dialect.do_ping
            monkeypatch.setattr(engine.dialect, "do_ping", lambda c, real=real: made.append(c) or real(c))
    return made


@ON_POSTGRES
def test_a_connection_used_a_moment_ago_is_not_checked_again(app, client, pings):
    for n in range(5):
        assert submit(client, email=f"busy{n}@example.org").status_code == 303
    assert pings == []  # under load: no round trip before each submission
    assert count(app, Submission) == 5


@ON_POSTGRES
def test_an_idle_connection_the_database_dropped_is_replaced_before_use(app, client, pings, monkeypatch):
    from petition import connections

    assert submit(client, email="before@example.org").status_code == 303
    monkeypatch.setattr(connections, "PING_AFTER_IDLE_SECONDS", 0.0)  # as if idle for a long time
    assert drop_pooled_connections(app) >= 1
    response = submit(client, email="after@example.org")
    assert response.status_code == 303
    assert pings  # it was checked, found dead and replaced, so the signer saw nothing
    assert emails_of(app, Submission) == ["after@example.org", "before@example.org"]


@ON_POSTGRES
def test_a_busy_connection_the_database_dropped_costs_no_submission(app, client, pings, mailbox):
    app.config["COUNT_CACHE_SECONDS"] = 60  # as in production: the petition read once, not per signer
    assert submit(client, email="before@example.org").status_code == 303
    assert drop_pooled_connections(app) >= 1
    # Used a moment ago, so not checked: the write fails on the dropped connection and is made again.
    response = submit(client, email="after@example.org")
    assert response.status_code == 303
    assert pings == []
    assert on_the_side(app, "SELECT email FROM submission ORDER BY email") == [
        ("after@example.org",), ("before@example.org",)]  # each once, no more
    with app.app_context():
        db.engine.dispose()  # the sender's connections were dropped too: a round of its own would start afresh
    run_sender(app, mailbox)
    assert on_the_side(app, "SELECT email, count(outbox.id) FROM submission JOIN outbox "
                            "ON outbox.submission_id = submission.id GROUP BY email ORDER BY email") == [
        ("after@example.org", 1), ("before@example.org", 1)]  # one e-mail each


@ON_POSTGRES
def test_a_page_read_on_a_dropped_busy_connection_answers_503_once(app, client, mailbox):
    submit(client)
    run_sender(app, mailbox)
    confirm = links_in(mailbox.messages[0])["confirm"]
    assert client.get(confirm).status_code == 200
    assert drop_pooled_connections(app) >= 1
    busy = client.get(confirm)  # its read fails; the pool discards that connection and every older one
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "10"
    assert client.get(confirm).status_code == 200
    assert client.post(confirm, headers=SAME_ORIGIN).status_code == 303  # nothing was lost
    assert count(app) == 1
