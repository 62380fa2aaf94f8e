"""The ``petition`` command, and the embedded run served for real over HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select

from petition.extensions import db
from petition.models import Petition

from conftest import SHIPPED_PETITIONS, Browser, free_port, wait_until_serving

PETITION = Path(sys.executable).with_name("petition")


def test_sync_reports_each_petition_and_applies_changes(app, runner, petitions_dir):
    result = runner.invoke(args=["sync"])
    assert result.exit_code == 0
    assert "vadim-kuramshin: unchanged" in result.output
    page = petitions_dir / "closed-one.md"
    page.write_text(page.read_text().replace("goal: 100", "goal: 250"))
    result = runner.invoke(args=["sync"])
    assert "closed-one: updated" in result.output
    with app.app_context():
        assert db.session.scalar(select(Petition.goal).where(Petition.slug == "closed-one")) == 250


def test_sync_refuses_a_bad_declaration_naming_file_and_field(app, runner, petitions_dir):
    bad = petitions_dir / "bad.md"
    bad.write_text("---\nslug: bad\ntitle: Bad\ntarget: T\nsummary: S\ngoal: lots\nopens: 2026-01-01\n"
                   "closes: 2026-02-01\n---\nText\n")
    result = runner.invoke(args=["sync"])
    assert result.exit_code == 1
    assert f"{bad}: field 'goal': must be a positive whole number" in result.output
    assert "Traceback" not in result.output
    with app.app_context():  # nothing half-loaded
        assert db.session.scalar(select(Petition).where(Petition.slug == "bad")) is None


def test_send_mail_reports_what_it_sent(app, runner, client):
    from conftest import submit

    submit(client)
    result = runner.invoke(args=["send-mail"])
    assert result.exit_code == 0 and "sent 1, failed 0" in result.output


def test_the_console_script_refuses_production_without_secrets(tmp_path):
    env = {**os.environ, "PETITION_ENV": "production", "PETITION_INSTANCE_PATH": str(tmp_path)}
    env.pop("PETITION_SECRET_KEY", None)
    result = subprocess.run([str(PETITION), "db", "upgrade"], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "Error: PETITION_SECRET_KEY must be set when PETITION_ENV=production" in result.stderr
    assert "Traceback" not in result.stderr


def test_outside_a_project_the_command_says_what_is_missing_and_creates_nothing(tmp_path):
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETITION_")}
    for args in (["send-mail"], ["organiser", "list"], ["db", "upgrade"], ["serve"], ["purge"]):
        result = subprocess.run([str(PETITION), *args], cwd=empty, env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode != 0, args
        assert "No petition instance" in result.stderr and "PETITION_INSTANCE_PATH" in result.stderr, args
        assert "Traceback" not in result.stderr + result.stdout, args
    shown = subprocess.run([str(PETITION), "--help"], cwd=empty, env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "send-mail" in shown.stdout and "Traceback" not in shown.stderr
    assert list(empty.iterdir()) == []  # no ./instance, no database, no key

    # A mistyped instance path is not made into a new instance, except by the two commands that make one.
    instance = tmp_path / "instance"
    env["PETITION_INSTANCE_PATH"] = str(instance)
    for args in (["organiser", "list"], ["send-mail"], ["purge"], ["db", "current"]):
        result = subprocess.run([str(PETITION), *args], cwd=empty, env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode != 0 and "no such folder" in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and not instance.exists(), args
    for args in (["db", "upgrade"], ["organiser", "list"]):
        made = subprocess.run([str(PETITION), *args], cwd=empty, env=env, capture_output=True, text=True,
                              timeout=60)
        assert made.returncode == 0, made.stderr
    assert (instance / "secret_key").is_file() and list(empty.iterdir()) == []


def test_migrations_are_loaded_only_for_the_db_commands(tmp_path):
    """Flask-Migrate brings Alembic, a quarter of a second at every start: the app factory (every command,
    every worker) goes without, and ``petition db`` still has all of Flask-Migrate's commands and options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETITION_")}
    env.update(PETITION_INSTANCE_PATH=str(tmp_path), PETITION_SECRET_KEY="test", PETITION_SITE_DIR=str(tmp_path))
    probe = ("import sys, petition; petition.create_app(); "
             "print(sorted(m for m in sys.modules if m.startswith(('alembic', 'flask_migrate'))))")
    assert subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"
    upgraded = subprocess.run([str(PETITION), "db", "upgrade"], env=env, capture_output=True, text=True)
    assert upgraded.returncode == 0, upgraded.stderr
    migrations = Path(__file__).parent.parent / "petition" / "migrations"  # the group's own option works
    current = subprocess.run([str(PETITION), "db", "--directory", str(migrations), "current"], env=env,
                             capture_output=True, text=True)
    assert current.returncode == 0 and "(head)" in current.stdout, current.stderr


def eml_files(outbox: Path, count: int, seconds: float = 15) -> list[Path]:
    """The .eml files the background sender has written, once there are ``count`` of them."""
    deadline = time.monotonic() + seconds
    while len(list(outbox.glob("*.eml"))) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return sorted(outbox.glob("*.eml"))


@pytest.mark.slow
def test_serve_from_scratch_sign_confirm_from_the_eml_and_see_the_count(tmp_path, built_site):
    """The README's promise: serve, sign, find the link in instance/outbox/, confirm, count."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETITION_")}
    env["PETITION_INSTANCE_PATH"] = str(tmp_path / "instance")  # a new one, as in a fresh clone
    env["PETITION_PETITIONS_DIR"] = str(SHIPPED_PETITIONS)
    env["PETITION_COUNT_CACHE_SECONDS"] = "0"
    env["PETITION_SITE_DIR"] = str(built_site)
    env["PETITION_TRUSTED_PROXIES"] = "1"  # so that the client has an address of its own, not loopback's
    client = {"X-Forwarded-For": "203.0.113.77"}
    server = subprocess.Popen([str(PETITION), "serve", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        browser = Browser(base)
        wait_until_serving(browser, "/api/petitions", server)
        status, _, home = browser.request("/")
        assert status == 200 and "Solidarity with Kazakhstan" in home  # the site, on the same origin
        status, _, sign = browser.request("/petitions/vadim-kuramshin/sign/")
        assert status == 200 and 'action="/petitions/vadim-kuramshin/sign"' in sign  # the site's sign page
        assert browser.request("/api/petitions/vadim-kuramshin")[2].count('"signature_count":0') == 1

        status, headers, _ = browser.request("/petitions/vadim-kuramshin/sign", {
            "name": "Ekaterina", "email": "ekaterina@example.org", "country": "KZ"}, client)
        assert status == 303 and headers["Location"] == "/petitions/vadim-kuramshin/thanks/"
        assert browser.request(headers["Location"])[0] == 200

        outbox = tmp_path / "instance" / "outbox"
        [eml] = eml_files(outbox, 1)  # written by the background sender, unasked
        message = message_from_bytes(eml.read_bytes(), policy=policy.default)
        assert message["To"].addresses[0].addr_spec == "ekaterina@example.org"
        text = message.get_body(preferencelist=("plain",)).get_content()
        confirm = re.search(rf"{re.escape(base)}(/petitions/vadim-kuramshin/confirm/\S+)", text).group(1)

        status, _, page = browser.request(confirm, headers=client)
        assert status == 200 and "Ekaterina" in page
        status, headers, _ = browser.request(confirm, {}, client)
        assert status == 303 and headers["Location"].endswith("/petitions/vadim-kuramshin/confirmed")
        status, _, body = browser.request("/api/petitions/vadim-kuramshin")
        assert status == 200 and '"signature_count":1' in body

        receipt = message_from_bytes(eml_files(outbox, 2)[-1].read_bytes(), policy=policy.default)
        text = receipt.get_body(preferencelist=("plain",)).get_content()
        manage = re.search(rf"{re.escape(base)}(/petitions/vadim-kuramshin/manage/\S+)", text).group(1)
        status, _, page = browser.request(manage, headers=client)
        assert status == 200 and "ekaterina@example.org" in page
        assert list(browser.cookies) == []  # a signer's browser was given nothing to keep
        status, headers, _ = browser.request(manage, {}, client)  # withdrawn
        assert status == 303 and headers["Location"].endswith("/petitions/vadim-kuramshin/withdrawn")
        assert browser.request(manage, headers=client)[0] == 404
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0]
    assert f"Serving on http://127.0.0.1:{port}/" in output
    assert f"E-mails: written to {tmp_path / 'instance' / 'outbox'}" in output
    # The log names routes, never a link, an e-mail address or a client's address.
    assert "e-mail written to" in output
    for trace in (confirm.rsplit("/", 1)[1], manage.rsplit("/", 1)[1], "ekaterina@example.org", "203.0.113.77"):
        assert trace not in output
    assert (tmp_path / "instance" / "petition.sqlite3").exists()
