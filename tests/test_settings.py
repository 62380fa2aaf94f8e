"""Settings from PETITION_* variables, the embedded defaults, and the production refusals."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from limits import parse_many

from petition import create_app
from petition.settings import SETTINGS, ConfigError, read_environment

README = Path(__file__).resolve().parent.parent / "README.md"
PETITION = Path(sys.executable).with_name("petition")


def test_the_embedded_default_keeps_everything_in_the_instance_folder(tmp_path, monkeypatch):
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.chdir(tmp_path)
    app = create_app()
    instance = tmp_path / "instance"
    assert app.instance_path == str(instance)
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'petition.sqlite3'}"
    key_file = instance / "secret_key"
    assert app.config["SECRET_KEY"] == key_file.read_text().strip()
    assert len(app.config["SECRET_KEY"]) >= 40
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert create_app().config["SECRET_KEY"] == app.config["SECRET_KEY"]  # generated once, then kept
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_variables_override_the_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("PETITION_INSTANCE_PATH", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("PETITION_DATABASE_URL", "postgresql+psycopg://u:p@db.internal/petition")
    monkeypatch.setenv("PETITION_SECRET_KEY", "from the environment")
    monkeypatch.setenv("PETITION_BASE_URL", "https://campaign.example/")
    monkeypatch.setenv("PETITION_MAILS_PER_MAILBOX", "5")
    monkeypatch.setenv("PETITION_MAIL_CAP_HOURS", "12")
    monkeypatch.setenv("PETITION_SIGN_SOFT_LIMIT", "10 per minute; 50 per hour")
    monkeypatch.setenv("PETITION_SIGN_ALLOWED_DOMAINS", " Riseup.NET, example.org,,gmail.com ")
    app = create_app()
    assert app.instance_path == str(tmp_path / "elsewhere")
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert app.config["SECRET_KEY"] == "from the environment"
    assert app.config["BASE_URL"] == "https://campaign.example"
    assert app.config["MAILS_PER_MAILBOX"] == 5 and app.config["MAIL_CAP_HOURS"] == 12
    assert app.config["SIGN_SOFT_LIMIT"] == "10 per minute; 50 per hour"
    assert app.config["SIGN_ALLOWED_DOMAINS"] == frozenset({"riseup.net", "example.org", "gmail.com"})
    assert not (tmp_path / "elsewhere" / "secret_key").exists()


@pytest.mark.parametrize("missing, variable", [
    ({"PETITION_SMTP_URL": "smtp://mail.example:587"}, "PETITION_SECRET_KEY"),
    ({"PETITION_SECRET_KEY": "k" * 40}, "PETITION_SMTP_URL"),
])
def test_production_refuses_to_start_without_a_secret_key_and_smtp(tmp_path, monkeypatch, missing, variable):
    monkeypatch.setenv("PETITION_ENV", "production")
    monkeypatch.setenv("PETITION_INSTANCE_PATH", str(tmp_path))
    for name, value in missing.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=variable):
        create_app()


def test_production_with_both_marks_the_cookie_secure(tmp_path, monkeypatch):
    monkeypatch.setenv("PETITION_ENV", "production")
    monkeypatch.setenv("PETITION_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("PETITION_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("PETITION_SMTP_URL", "smtp://mail.example:587")
    app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True and app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_a_malformed_number_names_its_variable():
    with pytest.raises(ConfigError, match="PETITION_CONFIRM_DAYS"):
        read_environment({"PETITION_CONFIRM_DAYS": "soon"})
    with pytest.raises(ConfigError, match="PETITION_MAILS_PER_MAILBOX"):
        read_environment({"PETITION_MAILS_PER_MAILBOX": "0"})
    with pytest.raises(ConfigError, match="PETITION_MAIL_CAP_HOURS"):
        read_environment({"PETITION_MAIL_CAP_HOURS": "-24"})


def test_the_signing_defaults():
    """A mailbox gets three e-mails a day about a petition; a burst and a sustained window hold floods; the big
    providers' addresses are never held. The per-signature mail count of the old design is gone."""
    config = read_environment({})
    assert config["MAILS_PER_MAILBOX"] == 3 and config["MAIL_CAP_HOURS"] == 24
    assert [(w.amount, w.get_expiry()) for w in parse_many(config["SIGN_SOFT_LIMIT"])] == [(5, 60), (30, 600)]
    assert [(w.amount, w.get_expiry()) for w in parse_many(config["SIGN_HARD_LIMIT"])] == [(300, 3600)]
    domains = config["SIGN_ALLOWED_DOMAINS"]
    assert isinstance(domains, frozenset)
    assert {"gmail.com", "mail.ru", "yandex.ru", "outlook.com"} <= domains
    assert all(domain == domain.strip().lower() and domain for domain in domains)
    assert "example.org" not in domains
    assert "MAILS_PER_SIGNATURE" not in config
    assert "PETITION_MAILS_PER_SIGNATURE" not in {setting.env for setting in SETTINGS}


@pytest.mark.parametrize("value, expected", [
    ("Example.ORG", {"example.org"}),
    (" a.example , B.example,,  ", {"a.example", "b.example"}),
    ("mail.ru,MAIL.RU", {"mail.ru"}),
])
def test_allowed_domains_are_read_from_a_comma_separated_variable(value, expected):
    domains = read_environment({"PETITION_SIGN_ALLOWED_DOMAINS": value})["SIGN_ALLOWED_DOMAINS"]
    assert domains == frozenset(expected) and isinstance(domains, frozenset)


@pytest.mark.parametrize("soft_limit", ["2 per minute; 9 per hour", "9 per minute; 2 per hour"])
def test_either_window_of_the_soft_limit_holds_and_allowed_domains_never_are(tmp_path, monkeypatch, soft_limit):
    """Past the burst window or past the sustained one, whichever comes first, an address is flooding; the
    operator's list of allowed domains, not the default one, decides who is never held."""
    from petition import abuse

    monkeypatch.setenv("PETITION_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("PETITION_SIGN_SOFT_LIMIT", soft_limit)
    monkeypatch.setenv("PETITION_SIGN_ALLOWED_DOMAINS", "Riseup.net")
    app = create_app()

    def held(domain: str, address: str = "203.0.113.7") -> bool:
        with app.test_request_context(method="POST", environ_base={"REMOTE_ADDR": address}):
            return abuse.held({}, "settings-test", domain)

    assert [held("example.org") for _ in range(3)] == [False, False, True]
    assert held("riseup.net") is False  # the operator's own list
    assert held("gmail.com") is True  # the default list no longer applies
    assert held("example.org", address="203.0.113.8") is False  # per sender address


def test_readme_documents_every_setting_with_its_default():
    readme = README.read_text(encoding="utf-8")
    for setting in SETTINGS:
        row = re.search(rf"^\| `{setting.env}` \| ([^|]+) \|", readme, re.MULTILINE)
        assert row, f"{setting.env} is not documented in README.md"
        if isinstance(setting.default, (int, str)) and setting.default and "/" not in str(setting.default):
            assert str(setting.default) in row.group(1), setting.env


# Each once started the service and failed later: a 500 for every signer, a traceback from every command, or a
# sender failing round after round. Now none of them starts.
BAD_VALUES = [
    ("PETITION_SIGN_HARD_LIMIT", "bogus", "'bogus' is not a rate limit"),
    ("PETITION_SIGN_SOFT_LIMIT", "5 per fortnight", "'5 per fortnight' is not a rate limit"),
    ("PETITION_SIGN_SOFT_LIMIT", "5 per minute; 30 per soon", "'30 per soon' is not a rate limit"),
    ("PETITION_SIGN_HARD_LIMIT", "300 per hour;", "one of its limits is empty"),
    ("PETITION_RATELIMIT_STORAGE_URL", "bogus://x", "bogus:// is no store limits knows"),
    ("PETITION_RATELIMIT_STORAGE_URL", "127.0.0.1:6379", "no scheme://"),
    ("PETITION_RATELIMIT_STORAGE_URL", "async+redis://127.0.0.1:6379", "async+redis:// is no store"),
    ("PETITION_RATELIMIT_STORAGE_URL", "redis://127.0.0.1:port", "cannot be used"),
    ("PETITION_SMTP_URL", "foo://x", "must start with smtp:// or smtps://"),
    ("PETITION_SMTP_URL", "mail.example.org", "must start with smtp:// or smtps://"),
    ("PETITION_SMTP_URL", "smtp://mail.example.org?starttls=bogus", "starttls must be one of require, auto, off"),
    ("PETITION_SMTP_URL", "smtp://mail.example.org:99999", "port"),
    ("PETITION_BASE_URL", "notaurl", "must start with http:// or https://"),
    ("PETITION_BASE_URL", "https://campaign.example/petitions", "no path"),
    ("PETITION_BASE_URL", "https://campaign.example/?lang=ru", "no path, query or fragment"),
    ("PETITION_BASE_URL", "https://", "names no host"),
    ("PETITION_BASE_URL", "https://campaign.example:http", "port"),
]


@pytest.mark.parametrize("variable, value, problem", BAD_VALUES)
def test_a_bad_value_is_refused_at_start_naming_variable_problem_and_example(tmp_path, monkeypatch, variable,
                                                                            value, problem):
    monkeypatch.setenv("PETITION_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        create_app()
    message = str(refused.value)
    assert message.startswith(f"{variable}: ") and problem in message
    assert "for example" in message
    assert "\n" not in message
    assert not (tmp_path / "instance").exists()  # refused before anything was made


@pytest.mark.parametrize("variable, value", [
    ("PETITION_SMTP_URL", "foo://campaign:s3cret-pw@mail.example.org"),
    ("PETITION_SMTP_URL", "smtp://campaign:s3cret-pw@mail.example.org?starttls=maybe"),
    ("PETITION_SMTP_URL", "smtp://campaign:s3cret-pw@mail.example.org:port"),
    ("PETITION_RATELIMIT_STORAGE_URL", "bogus://:s3cret-pw@redis.internal:6379"),
    ("PETITION_RATELIMIT_STORAGE_URL", "redis://:s3cret-pw@redis.internal:port"),
    ("PETITION_BASE_URL", "https://campaign:s3cret-pw@campaign.example"),
])
def test_a_refusal_never_repeats_a_password(variable, value):
    with pytest.raises(ConfigError, match=variable) as refused:
        read_environment({variable: value})
    assert "s3cret-pw" not in str(refused.value)


@pytest.mark.parametrize("variable, value, key", [
    ("PETITION_RATELIMIT_STORAGE_URL", "redis://127.0.0.1:6379", "RATELIMIT_STORAGE_URI"),
    ("PETITION_RATELIMIT_STORAGE_URL", "memory://", "RATELIMIT_STORAGE_URI"),
    ("PETITION_SMTP_URL", "smtp://user:pw@host:587", "SMTP_URL"),
    ("PETITION_SMTP_URL", "smtps://host:465", "SMTP_URL"),
    ("PETITION_SMTP_URL", "smtp://127.0.0.1:1025?starttls=off", "SMTP_URL"),
    ("PETITION_SIGN_SOFT_LIMIT", "10/minute, 50 per 2 hours", "SIGN_SOFT_LIMIT"),
    ("PETITION_SIGN_HARD_LIMIT", "1000 per day", "SIGN_HARD_LIMIT"),
    ("PETITION_BASE_URL", "http://[::1]:8000", "BASE_URL"),
    ("PETITION_BASE_URL", "https://campaign.example:8443", "BASE_URL"),
])
def test_good_values_are_taken_as_written(tmp_path, monkeypatch, variable, value, key):
    monkeypatch.setenv("PETITION_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv(variable, value)
    assert create_app().config[key] == value  # the store is not connected to: none is running here


def test_the_defaults_pass_their_own_checks(tmp_path, monkeypatch):
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.setenv("PETITION_INSTANCE_PATH", str(tmp_path))
    config = create_app().config
    defaults = {setting.key: setting.default for setting in SETTINGS}
    for key in ("BASE_URL", "RATELIMIT_STORAGE_URI", "SIGN_SOFT_LIMIT", "SIGN_HARD_LIMIT"):
        assert config[key] == defaults[key]
    assert config["SMTP_URL"] is None


def test_the_console_script_prints_one_line_for_a_bad_value(tmp_path):
    """Once a limits ConfigurationError's traceback from every command."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PETITION_")}
    env.update(PETITION_INSTANCE_PATH=str(tmp_path), PETITION_RATELIMIT_STORAGE_URL="bogus://x")
    result = subprocess.run([str(PETITION), "sync"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: PETITION_RATELIMIT_STORAGE_URL: bogus:// is no store")
    assert "for example memory://" in lines[0]
    assert list(tmp_path.iterdir()) == []  # refused before the instance was touched
