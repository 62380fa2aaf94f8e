"""Shared fixtures: the app on SQLite and on a real PostgreSQL, a real SMTP server, and signing helpers.

Every test that uses ``app`` runs twice, once per database engine. PostgreSQL is a throwaway cluster started
here from Debian's binaries; where they are missing the PostgreSQL half is skipped on a developer's machine
and fails in CI (``CI`` set), so a missing server can never pass unnoticed.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from flask_migrate import upgrade
from sqlalchemy import text

import pg_cluster
from petition import create_app
from petition.extensions import db, init_migrations

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_PETITIONS = ROOT / "docs" / "en" / "petitions"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def need(what: str) -> None:
    """A real part is missing: fail in CI, skip (with the reason) on a developer's machine."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI", pytrace=False)
    pytest.skip(f"{what} not available on this machine")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres_url():
    """URL of an empty database on a PostgreSQL server of our own, on loopback."""
    given = os.environ.get("PETITION_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    if pg_cluster.bindir() is None:
        need("PostgreSQL (Debian package postgresql)")
    with pg_cluster.running(free_port()) as url:
        yield url


# ---------------------------------------------------------------- the site


def build_site(site: Path, config: Path = ROOT / "mkdocs.yml") -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of a configuration into ``site``, as an editor runs it."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    env.pop("PETITION_BASE_URL", None)
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
                           "-d", str(site)], cwd=config.parent, env=env, capture_output=True, text=True)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """The campaign site, built once for the whole run."""
    folder = tmp_path_factory.mktemp("site")
    result = build_site(folder)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return folder


# ---------------------------------------------------------------- the app


@pytest.fixture
def petitions_dir(tmp_path: Path) -> Path:
    """The shipped petition plus a closed one and one that is not open yet."""
    folder = tmp_path / "petitions"
    folder.mkdir()
    shutil.copy(SHIPPED_PETITIONS / "vadim-kuramshin.md", folder)
    for slug, opens, closes in (("closed-one", "2020-01-01", "2020-12-31"),
                                ("future-one", "2999-01-01", "2999-12-31")):
        (folder / f"{slug}.md").write_text(
            f"---\nslug: {slug}\ntitle: Test petition {slug}\ntarget: Somebody\n"
            f"summary: A test petition.\ngoal: 100\nopens: {opens}\ncloses: {closes}\n---\n\nText.\n",
            encoding="utf-8")
    return folder


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def migrated_app(database_url: str, tmp_path: Path, petitions_dir: Path, smtp_url: str | None = None):
    """The service on ``database_url``, migrated, with the petitions of ``petitions_dir`` loaded."""
    app = create_app({
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "test secret key",
        "SMTP_URL": smtp_url,
        "BASE_URL": "http://petition.test",
        "PETITIONS_DIR": str(petitions_dir),
        "SITE_DIR": str(tmp_path / "no-site"),  # the plain frame; tests of the site's frame build one
        "COUNT_CACHE_SECONDS": 0,
    })
    init_migrations(app)
    with app.app_context():
        upgrade()
        from petition import catalogue

        catalogue.sync(petitions_dir)
    return app


@pytest.fixture
def app(tmp_path: Path, database_url: str, petitions_dir: Path):
    app = migrated_app(database_url, tmp_path, petitions_dir)
    yield app
    with app.app_context():
        for engine in db.engines.values():  # a test may have had the server drop the pooled connections
            engine.dispose()
        if db.engine.dialect.name == "postgresql":
            tables = ", ".join(db.metadata.tables)
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()
        db.session.remove()
        for engine in db.engines.values():  # the default and, on PostgreSQL, the signing writes' own
            engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


# ---------------------------------------------------------------- signing helpers

VALID = {
    "name": "Вадим Курамшин",
    "email": "supporter@example.org",
    "country": "KZ",
    "postcode": "Astana",
    "comment": "Free Vadim!",
}


def csrf_token(client, path: str) -> str:
    """An organiser's form token (visitors' forms have none)."""
    page = client.get(path)
    match = CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({page.status_code})"
    return match.group(1)


SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}


def submit(client, slug: str = "vadim-kuramshin", headers: dict | None = None, **fields):
    """Sign the way a browser does from the site's page: post the form, no token, no cookie."""
    data = {**VALID, **fields}
    return client.post(f"/petitions/{slug}/sign", data={k: v for k, v in data.items() if v is not None},
                       headers=SAME_ORIGIN if headers is None else headers)


class Mailbox:
    """The background sender's work, done on demand, with the messages it would send kept here."""

    def __init__(self) -> None:
        self.messages: list = []

    def send(self, message) -> None:
        from email import message_from_bytes, policy

        self.messages.append(message_from_bytes(message.as_bytes(policy=message.policy.clone(utf8=True)),
                                                policy=policy.default))

    def to(self, address: str) -> list:
        return [m for m in self.messages if m["To"].addresses[0].addr_spec == address]


def run_sender(app, mailbox: Mailbox | None = None) -> tuple[int, int]:
    """Decide the waiting submissions and deliver the outbox, as ``petition send-mail`` does."""
    from petition import sender

    with app.app_context():
        return sender.run_once(mailbox)


LINK = re.compile(r"https?://[^/\s]+(/petitions/[^\s\"<]+)")


def links_in(message) -> dict[str, str]:
    """The service's links in an e-mail's text, by kind (confirm, manage, sign)."""
    text = message.get_body(preferencelist=("plain",)).get_content()
    return {path.split("/")[3]: path for path in LINK.findall(text)}


def answers_in(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


def sign_and_confirm(app, client, mailbox: Mailbox, **fields) -> str:
    """Sign, let the sender mail the link, press the button; return the manage link from the receipt."""
    address = fields.get("email", VALID["email"])
    before = len(mailbox.to(address))
    assert submit(client, **fields).status_code == 303
    run_sender(app, mailbox)
    confirm = links_in(mailbox.to(address)[before])["confirm"]
    assert client.post(confirm, headers=SAME_ORIGIN).status_code == 303
    run_sender(app, mailbox)
    return links_in(mailbox.to(address)[-1])["manage"]


# ---------------------------------------------------------------- over real HTTP


class Browser:
    """Cookies kept between requests, redirects not followed: enough to sign like a person. Its posts say,
    as a browser's do, that they come from a page of the same origin."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), NoRedirect())

    def request(self, path: str, data: dict | None = None, headers: dict | None = None) -> tuple[int, dict, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        sent = {"Sec-Fetch-Site": "same-origin"} if data is not None else {}
        request = urllib.request.Request(self.base + path, data=body, headers={**sent, **(headers or {})})
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    def csrf(self, path: str) -> str:
        return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', self.request(path)[2]).group(1)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def wait_until_serving(browser: "Browser", path: str, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            browser.request(path)
            return
        except (urllib.error.URLError, ConnectionError):
            assert process.poll() is None, f"{process.args[0]} exited with {process.returncode}"
            assert time.monotonic() < deadline, f"nothing answered at {browser.base}{path}"
            time.sleep(0.2)


@contextlib.contextmanager
def serving_site(folder: Path, site: Path, smtp_url: str):
    """``petition serve`` in ``folder`` with the built ``site``, the shipped petitions and mail to ``smtp_url``,
    answering by the time it is yielded: its base URL and the environment it runs in (for the CLI)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETITION_")}
    env.update({"PETITION_INSTANCE_PATH": str(folder / "instance"), "PETITION_SITE_DIR": str(site),
                "PETITION_PETITIONS_DIR": str(SHIPPED_PETITIONS), "PETITION_SMTP_URL": smtp_url,
                "PETITION_COUNT_CACHE_SECONDS": "0"})
    server = subprocess.Popen([str(Path(sys.executable).with_name("petition")), "serve", "--port", str(port)],
                              cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(Browser(base), "/api/petitions", server)  # migrated by then
        yield base, env
    finally:
        server.terminate()
        server.wait(timeout=10)


# ---------------------------------------------------------------- SMTP


class Inbox:
    """Messages received by the loopback SMTP server, as parsed e-mails."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a fixed loopback port that can be stopped and started again."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.url = f"smtp://127.0.0.1:{self.port}"
        self.controller = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server():
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class RedisServer:
    """redis-server from Debian's package on a loopback port, which can be stopped and started again."""

    def __init__(self, folder: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            need("Redis (Debian package redis-server)")
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", "--dir", str(self.folder)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline and self.process.poll() is None, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # as a crash would: no goodbye to the clients
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url
