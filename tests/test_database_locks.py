"""A locked or unresponsive database: every wait for it ends after PETITION_DB_WAIT_SECONDS with a 503 and
Retry-After, well inside gunicorn's worker timeout, in both run modes; readers go on meanwhile, no worker is
killed, and nothing stored is lost.

The locks are held by other operating-system processes, as a stuck writer would hold them: one in a
transaction on the SQLite database, one on the writers' queue's lock file."""

from __future__ import annotations

import fcntl
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from petition import connections, create_app
from petition.settings import SETTINGS

from conftest import SHIPPED_PETITIONS, Browser, free_port, submit, wait_until_serving
from test_production import DEPLOY, VENV_BIN, gunicorn_command

SLUG = "vadim-kuramshin"
SIGN = f"/petitions/{SLUG}/sign"
COUNT = f"/api/petitions/{SLUG}"
DEFAULT_WAIT = next(s.default for s in SETTINGS if s.env == "PETITION_DB_WAIT_SECONDS")
MARGIN = 2.5  # seconds a loaded test machine may add to a wait
# A request may wait for the database at three steps (a pooled connection, its turn among SQLite's writers,
# SQLite's lock), each for the wait at most.
STEPS = 3


def worker_timeout() -> int:
    """gunicorn's --timeout in the shipped unit."""
    command = gunicorn_command(8001)
    return int(command[command.index("--timeout") + 1])


def test_the_database_wait_is_written_down_well_inside_the_worker_timeout():
    example = (DEPLOY / "petition.env.example").read_text(encoding="utf-8")
    given = re.search(r"^PETITION_DB_WAIT_SECONDS=(\S+)", example, re.MULTILINE)
    wait = float(given.group(1)) if given else DEFAULT_WAIT  # what production runs with
    assert STEPS * wait + 10 <= worker_timeout()
    assert 0 < DEFAULT_WAIT <= 10


def test_every_wait_for_the_database_has_an_end(tmp_path):
    sqlite = create_app({"INSTANCE_PATH": str(tmp_path / "s"), "SECRET_KEY": "k", "DB_WAIT_SECONDS": 4})
    options = sqlite.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["connect_args"]["timeout"] == 4 and options["pool_timeout"] == 4
    postgres = create_app({"INSTANCE_PATH": str(tmp_path / "p"), "SECRET_KEY": "k", "DB_WAIT_SECONDS": 2.5,
                           "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://nobody@127.0.0.1/none"})
    options = postgres.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["connect_args"] == {"connect_timeout": 3, "tcp_user_timeout": 2500,
                                       "options": "-c lock_timeout=2500"}
    assert options["pool_timeout"] == 2.5
    given = create_app({"INSTANCE_PATH": str(tmp_path / "g"), "SECRET_KEY": "k",
                        "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://nobody@127.0.0.1/none?connect_timeout=9"})
    assert "connect_timeout" not in given.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]  # the URL's


# ---------------------------------------------------------------- locks held by other processes

HOLD = """
import fcntl, os, sqlite3, sys
what, database = sys.argv[1], sys.argv[2]
if what == "database":
    holding = sqlite3.connect(database, isolation_level=None)
    holding.execute("BEGIN EXCLUSIVE")
else:
    holding = os.open(database + "-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holding, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def held(what: str, database: Path) -> Iterator[None]:
    """Another process holds the database (``database``: a write transaction) or the writers' queue
    (``queue``: its lock file) until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, what, str(database)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def timed(call: Callable, *args) -> tuple[float, object]:
    start = time.monotonic()
    result = call(*args)
    return time.monotonic() - start, result


# ---------------------------------------------------------------- the writers' queue itself


@pytest.fixture
def database(tmp_path) -> Path:
    path = tmp_path / "queue.sqlite3"
    sqlite3.connect(path).close()
    return path


@pytest.fixture
def engine(database):
    engine = create_engine(f"sqlite:///{database}")
    yield engine
    engine.dispose()


def waiting_threads() -> int:
    return sum(thread.name == "writers-queue" for thread in threading.enumerate())


@pytest.mark.slow
def test_a_turn_held_by_another_process_ends_in_database_busy_not_a_wait(engine, database):
    threads_before = waiting_threads()  # other databases' queues may have theirs
    with held("queue", database):
        start = time.monotonic()
        with pytest.raises(connections.DatabaseBusy):
            with connections.writer_turn(engine, wait=0.5):
                pass
        assert 0.4 < time.monotonic() - start < 0.5 + MARGIN
        for _ in range(3):  # given up again and again: one thread waits for the file, not one a try
            with pytest.raises(connections.DatabaseBusy):
                with connections.writer_turn(engine, wait=0.1):
                    pass
        assert waiting_threads() == threads_before + 1

    # The holder is gone: the turn is free at once, and the abandoned wait did not keep the file.
    with connections.writer_turn(engine, wait=0.5):
        other = os.open(f"{database}-writer.lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # this process holds the queue now
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    with held("queue", database):
        pass  # and another process gets it after us


@pytest.mark.slow
def test_a_waiting_writer_goes_the_moment_the_other_process_is_done(engine, database):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, "queue", str(database)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    released = []
    threading.Timer(0.5, lambda: (released.append(time.monotonic()), holder.stdin.close())).start()
    with connections.writer_turn(engine, wait=10):
        got = time.monotonic()
    holder.wait(timeout=10)
    assert 0 <= got - released[0] < 0.25  # handed over, not found by polling


@pytest.mark.slow
def test_a_turn_held_by_another_thread_of_the_process_ends_too(engine):
    inside, leave = threading.Event(), threading.Event()

    def writer() -> None:
        with connections.writer_turn(engine, wait=1):
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert inside.wait(5)
        start = time.monotonic()
        with pytest.raises(connections.DatabaseBusy):
            with connections.writer_turn(engine, wait=0.3):
                pass
        assert 0.25 < time.monotonic() - start < 0.3 + MARGIN
    finally:
        leave.set()
        thread.join(10)
    with connections.writer_turn(engine, wait=0.3):
        pass


def test_a_background_writer_waits_longer_than_a_request(tmp_path):
    app = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "k", "DB_WAIT_SECONDS": 3})
    with app.test_request_context():
        assert connections._default_wait() == 3
    with app.app_context():
        assert connections._default_wait() == connections.BACKGROUND_WAIT_SECONDS > 3


@pytest.mark.slow
def test_a_sign_post_behind_a_held_queue_answers_503_within_the_wait(tmp_path):
    database = tmp_path / "petition.sqlite3"
    app = create_app({"INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "k", "TESTING": True,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}", "PETITIONS_DIR": str(SHIPPED_PETITIONS),
                      "SITE_DIR": str(tmp_path / "no-site"), "COUNT_CACHE_SECONDS": 0, "DB_WAIT_SECONDS": 1})
    with app.app_context():
        from flask_migrate import upgrade

        from petition import catalogue
        from petition.extensions import init_migrations

        init_migrations(app)
        upgrade()
        catalogue.sync(SHIPPED_PETITIONS)
    client = app.test_client()
    assert submit(client, email="before@example.org").status_code == 303
    with held("queue", database):
        elapsed, busy = timed(submit, client)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "10"
        assert "busy for a moment" in busy.get_data(as_text=True)
        assert 0.9 < elapsed < 1 + MARGIN
        assert client.get(COUNT).status_code == 200
    assert submit(client, email="after@example.org").status_code == 303
    with sqlite3.connect(database) as check:
        assert sorted(e for e, in check.execute("SELECT email FROM submission")) == [
            "after@example.org", "before@example.org"]


# ---------------------------------------------------------------- PostgreSQL: a held table, a silent server

ON_POSTGRES = pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                                      indirect=True)


@ON_POSTGRES
@pytest.mark.slow
def test_a_locked_postgresql_table_answers_503_within_the_wait(app, client):
    import psycopg

    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg", "postgresql")
    assert submit(client, email="before@example.org").status_code == 303
    with psycopg.connect(url) as holder:
        holder.execute("LOCK TABLE submission IN ACCESS EXCLUSIVE MODE")
        elapsed, busy = timed(submit, client)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "10"
        assert DEFAULT_WAIT - 0.5 < elapsed < DEFAULT_WAIT + MARGIN
        holder.rollback()
    assert submit(client, email="after@example.org").status_code == 303


@pytest.mark.slow
def test_a_postgresql_server_that_never_answers_gives_503_within_the_wait(tmp_path):
    with socket.socket() as silent:  # accepts connections (the kernel does), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        app = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "k", "SITE_DIR": str(tmp_path / "no"),
                          "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://nobody@127.0.0.1:{port}/none",
                          "DB_WAIT_SECONDS": 2})
        elapsed, busy = timed(submit, app.test_client())
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "10"
    assert 1.5 < elapsed < 2 + MARGIN


# ---------------------------------------------------------------- both run modes, for real


def service_env(tmp_path: Path, base: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETITION_")}
    env.update({"PETITION_INSTANCE_PATH": str(tmp_path / "instance"),
                "PETITION_SECRET_KEY": "a secret for this test only",
                "PETITION_SITE_DIR": str(tmp_path / "no-site"),
                "PETITION_PETITIONS_DIR": str(SHIPPED_PETITIONS),
                "PETITION_BASE_URL": base,
                "PETITION_COUNT_CACHE_SECONDS": "0"})
    return env  # PETITION_DB_WAIT_SECONDS as shipped


def confirm_link(outbox: Path, address: str, base: str, seconds: float = 15) -> str:
    """The confirmation link the sender wrote to ``address``, once it is there."""
    deadline = time.monotonic() + seconds
    while True:
        for eml in outbox.glob("*.eml"):
            message = message_from_bytes(eml.read_bytes(), policy=policy.default)
            if message["To"].addresses[0].addr_spec != address:
                continue
            text = message.get_body(("plain",)).get_content()
            found = re.search(rf"{re.escape(base)}(/petitions/{SLUG}/confirm/\S+)", text)
            if found:
                return found.group(1)
        assert time.monotonic() < deadline, f"no confirmation link for {address}"
        time.sleep(0.1)


def sign(browser: Browser, email: str) -> tuple[int, dict, str]:
    return browser.request(SIGN, {"name": "Ekaterina", "email": email, "country": "KZ"})


def signature_count(browser: Browser) -> int:
    status, _, body = browser.request(COUNT)
    assert status == 200
    return int(re.search(r'"signature_count":(\d+)', body).group(1))


def locked_database_scenario(base: str, database: Path, outbox: Path, send_mail: Callable[[], None],
                             alive: Callable[[], None], record_property) -> None:
    """Sign and confirm one, leave one waiting; then hold the queue and the database from other processes:
    signing and confirming answer 503 with Retry-After within the wait while the count API answers; let go,
    and everything goes on with nothing lost."""
    browser = Browser(base)
    assert sign(browser, "stored@example.org")[0] == 303
    send_mail()
    assert browser.request(confirm_link(outbox, "stored@example.org", base), {})[0] == 303
    assert sign(browser, "waiting@example.org")[0] == 303
    send_mail()
    waiting = confirm_link(outbox, "waiting@example.org", base)
    assert signature_count(browser) == 1

    def refused(call: Callable, *args) -> float:
        answered: dict = {}
        thread = threading.Thread(target=lambda: answered.update(zip(("seconds", "answer"), timed(call, *args))))
        thread.start()
        time.sleep(0.5)  # the post is waiting now: the rest of the service is not
        reading, count = timed(signature_count, Browser(base))
        assert count == 1 and reading < 1.0, f"the count API took {reading:.2f} s"
        thread.join(DEFAULT_WAIT + 10)
        status, headers, body = answered["answer"]
        assert status == 503 and headers["Retry-After"] == "10"
        assert "busy for a moment" in body and "Traceback" not in body
        assert DEFAULT_WAIT - 0.5 < answered["seconds"] < min(DEFAULT_WAIT + MARGIN, worker_timeout())
        return answered["seconds"]

    with held("database", database):
        with held("queue", database):
            record_property("sign_503_seconds_queue_and_database_held", refused(sign, browser, "new@example.org"))
        # Its turn comes at once now, then SQLite's lock is waited for, as long.
        record_property("sign_503_seconds_database_held", refused(sign, browser, "new@example.org"))
        record_property("confirm_503_seconds_database_held", refused(browser.request, waiting, {}))
        alive()
    alive()
    assert sign(browser, "new@example.org")[0] == 303  # the signer sends again
    assert browser.request(waiting, {})[0] == 303
    assert signature_count(browser) == 2
    with sqlite3.connect(database) as check:
        assert sorted(e for e, in check.execute("SELECT email FROM signature")) == [
            "stored@example.org", "waiting@example.org"]  # nothing stored was lost
        assert [e for e, in check.execute("SELECT email FROM submission")] == ["new@example.org"]


@pytest.mark.slow
def test_under_gunicorn_a_locked_database_answers_503_and_no_worker_dies(tmp_path, record_property):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(tmp_path, base)
    unit = (DEPLOY / "systemd" / "petition-web.service").read_text(encoding="utf-8")
    for pre in re.findall(r"^ExecStartPre=\S+/petition (.+)$", unit, re.MULTILINE):
        subprocess.run([str(VENV_BIN / "petition"), *pre.split()], env=env, cwd=tmp_path, check=True,
                       capture_output=True)
    web = subprocess.Popen(gunicorn_command(port), env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)

    def workers() -> list[str]:
        return sorted(subprocess.run(["pgrep", "-P", str(web.pid)], capture_output=True, text=True).stdout.split())

    def send_mail() -> None:
        sent = subprocess.run([str(VENV_BIN / "petition"), "send-mail"], env=env, cwd=tmp_path,
                              capture_output=True, text=True)
        assert sent.returncode == 0 and "failed 0" in sent.stdout, sent.stderr

    output = ""
    try:
        wait_until_serving(Browser(base), "/api/petitions", web)
        deadline = time.monotonic() + 30
        while len(before := workers()) < 3 and time.monotonic() < deadline:  # the last may still be booting
            time.sleep(0.1)
        assert len(before) == 3

        def alive() -> None:
            assert web.poll() is None and workers() == before  # none killed, none replaced

        locked_database_scenario(base, tmp_path / "instance" / "petition.sqlite3", tmp_path / "instance" / "outbox",
                                 send_mail, alive, record_property)
        record_property("gunicorn_worker_pids", " ".join(before))
    finally:
        web.terminate()
        output = web.communicate(timeout=15)[0]
    assert "WORKER TIMEOUT" not in output and "Traceback" not in output, output
    assert "POST visitors.sign answered 503 (DatabaseBusy)" in output
    assert "POST visitors.sign answered 503 (OperationalError)" in output


@pytest.mark.slow
def test_embedded_a_locked_database_answers_503_and_the_server_goes_on(tmp_path, record_property):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(VENV_BIN / "petition"), "serve", "--port", str(port)], cwd=tmp_path,
                              env=service_env(tmp_path, base), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)

    def alive() -> None:
        assert server.poll() is None

    output = ""
    try:
        wait_until_serving(Browser(base), "/api/petitions", server)
        locked_database_scenario(base, tmp_path / "instance" / "petition.sqlite3", tmp_path / "instance" / "outbox",
                                 lambda: None, alive, record_property)  # its own sender mails
    finally:
        server.terminate()
        output = server.communicate(timeout=15)[0]
    assert "POST visitors.sign answered 503 (DatabaseBusy)" in output
    assert "POST visitors.confirm answered 503 (OperationalError)" in output
