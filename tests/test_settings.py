"""Settings from PETITION_* variables, the embedded defaults, and the production refusals."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from petition import create_app
from petition.settings import SETTINGS, ConfigError, read_environment

README = Path(__file__).resolve().parent.parent / "README.md"


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
    monkeypatch.setenv("PETITION_MAILS_PER_SIGNATURE", "5")
    app = create_app()
    assert app.instance_path == str(tmp_path / "elsewhere")
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert app.config["SECRET_KEY"] == "from the environment"
    assert app.config["BASE_URL"] == "https://campaign.example"
    assert app.config["MAILS_PER_SIGNATURE"] == 5
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
    with pytest.raises(ConfigError, match="PETITION_MAILS_PER_SIGNATURE"):
        read_environment({"PETITION_MAILS_PER_SIGNATURE": "0"})


def test_readme_documents_every_setting_with_its_default():
    readme = README.read_text(encoding="utf-8")
    for setting in SETTINGS:
        row = re.search(rf"^\| `{setting.env}` \| ([^|]+) \|", readme, re.MULTILINE)
        assert row, f"{setting.env} is not documented in README.md"
        if isinstance(setting.default, (int, str)) and setting.default and "/" not in str(setting.default):
            assert str(setting.default) in row.group(1), setting.env
