"""Faults: a busy or unreachable database answers 503 with Retry-After; a worker killed mid-load loses no
accepted signature; backups restore what they hold."""

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
from petition.models import Signature

from conftest import SHIPPED_PETITIONS, VALID, Browser, csrf_token, free_port, submit, wait_until_serving

SIGN = "/petitions/vadim-kuramshin/sign"


def count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Signature))


def test_a_locked_sqlite_database_answers_503_then_recovers(tmp_path, petitions_dir):
    database = tmp_path / "busy.sqlite3"
    app = create_app({"INSTANCE_PATH": str(tmp_path / "i"), "SECRET_KEY": "k", "TESTING": True,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}", "PETITIONS_DIR": str(petitions_dir),
                      "SITE_DIR": str(tmp_path / "no-site"),
                      "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"timeout": 0.2}}})
    with app.app_context():
        from flask_migrate import upgrade

        from petition import catalogue
        from petition.extensions import init_migrations

        init_migrations(app)
        upgrade()
        catalogue.sync(petitions_dir)
    client = app.test_client()
    token = csrf_token(client, SIGN)
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    try:
        busy = client.post(SIGN, data={**VALID, "csrf_token": token})
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == "30"
        assert "busy for a moment" in busy.get_data(as_text=True) and "Traceback" not in busy.get_data(as_text=True)
        assert client.get("/api/petitions/vadim-kuramshin").status_code == 200  # readers go on (WAL)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert client.post(SIGN, data={**VALID, "csrf_token": token}).status_code == 303
    assert count(app) == 1


def test_an_unreachable_database_answers_503_with_retry_after(tmp_path):
    port = free_port()  # nothing listens there
    app = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "k", "SITE_DIR": str(tmp_path / "no-site"),
                      "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://nobody@127.0.0.1:{port}/none"
                                                 "?connect_timeout=2"})
    client = app.test_client()
    page = client.get(SIGN)
    assert page.status_code == 503 and page.headers["Retry-After"] == "30"
    assert "Service busy" in page.get_data(as_text=True)
    api = client.get("/api/petitions/vadim-kuramshin")
    assert api.status_code == 503 and api.json["status"] == 503


@pytest.mark.slow
def test_a_worker_killed_mid_load_loses_no_accepted_signature(app, database_url, tmp_path):
    """gunicorn, two workers, 160 signers from 4 threads; one worker gets SIGKILL part way.
    Every submission answered 303 must be in the database afterwards."""
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
                browser = Browser(base)
                try:
                    token = browser.csrf(SIGN)
                    status, _, _ = browser.request(SIGN, {**VALID, "email": email, "csrf_token": token})
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
    with app.app_context():
        stored = set(db.session.scalars(select(Signature.email)))
    missing = [email for email in accepted if email not in stored]
    assert missing == []


def test_backup_and_restore(app, client, runner, tmp_path):
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        result = runner.invoke(args=["backup", str(tmp_path / "b.sqlite3")])
        assert result.exit_code == 1 and "pg_dump" in result.output
        return
    for n in range(3):
        submit(client, email=f"kept{n}@example.org")
    target = tmp_path / "backup.sqlite3"
    result = runner.invoke(args=["backup", str(target)])
    assert result.exit_code == 0 and "Backed up 3 signatures" in result.output
    assert runner.invoke(args=["backup", str(target)]).exit_code == 1  # never overwrites
    submit(client, email="after-the-backup@example.org")
    assert count(app) == 4

    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("hello")
    refused = runner.invoke(args=["restore", str(not_a_backup), "--yes"])
    assert refused.exit_code == 1 and "not an SQLite database" in refused.output
    assert count(app) == 4  # nothing lost by a refused restore

    result = runner.invoke(args=["restore", str(target)], input="y\n")
    assert result.exit_code == 0 and "Restored 3 signatures" in result.output
    assert count(app) == 3
    assert client.get("/api/petitions/vadim-kuramshin").status_code == 200


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
    assert pings == []  # under load: no round trip before each signature
    assert count(app) == 5


@ON_POSTGRES
def test_an_idle_connection_the_database_dropped_is_replaced_before_use(app, client, pings, monkeypatch):
    from petition import connections

    assert submit(client, email="before@example.org").status_code == 303
    monkeypatch.setattr(connections, "PING_AFTER_IDLE_SECONDS", 0.0)  # as if idle for a long time
    assert drop_pooled_connections(app) >= 1
    response = submit(client, email="after@example.org")
    assert response.status_code == 303
    assert pings  # it was checked, found dead and replaced, so the signer saw nothing
    assert count(app) == 2


@ON_POSTGRES
def test_a_busy_connection_the_database_dropped_costs_no_signature(app, client, pings):
    app.config["COUNT_CACHE_SECONDS"] = 60  # as in production: the petition read once, not per signer
    assert submit(client, email="before@example.org").status_code == 303
    token = csrf_token(client, SIGN)
    assert drop_pooled_connections(app) >= 1
    # Used a moment ago, so not checked: the write fails on the dropped connection and is made again.
    response = client.post(SIGN, data={**VALID, "csrf_token": token, "email": "after@example.org"})
    assert response.status_code == 303
    assert pings == []
    rows = on_the_side(app, "SELECT email, count(outbox.id) FROM signature JOIN outbox "
                            "ON outbox.signature_id = signature.id GROUP BY email ORDER BY email")
    assert rows == [("after@example.org", 1), ("before@example.org", 1)]  # one mail each, no more


@ON_POSTGRES
def test_a_page_read_on_a_dropped_busy_connection_answers_503_once(app, client):
    assert client.get(SIGN).status_code == 200
    assert drop_pooled_connections(app) >= 1
    busy = client.get(SIGN)  # its read fails; the pool discards that connection and every older one
    assert busy.status_code == 503 and "Retry-After" in busy.headers
    assert client.get(SIGN).status_code == 200
