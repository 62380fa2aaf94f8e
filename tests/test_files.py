"""The files the service writes are its own user's alone, whatever the umask: the instance folder and the
outbox 0700; the secret and hash keys, the SQLite database with its WAL and shared memory, backups and
``.eml`` messages 0600. An install made before is tightened when the service starts."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from flask_migrate import upgrade

from petition import catalogue, create_app, hashing
from petition.extensions import db, init_migrations

from conftest import run_sender, submit


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask():
    """As on many servers: without the service's care, new files would be readable by every user."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def embedded_app(tmp_path: Path, petitions_dir: Path):
    """The embedded default: secret key, SQLite database and outbox in the instance folder."""
    app = create_app({
        "TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": None,
        "SQLALCHEMY_DATABASE_URI": None, "SMTP_URL": None, "HASH_KEY": None, "BASE_URL": "http://petition.test",
        "PETITIONS_DIR": str(petitions_dir), "SITE_DIR": str(tmp_path / "no-site"), "COUNT_CACHE_SECONDS": 0,
    })
    init_migrations(app)
    with app.app_context():
        upgrade()
        catalogue.sync(petitions_dir)
    return app


@pytest.fixture
def embedded(tmp_path, petitions_dir, loose_umask):
    app = embedded_app(tmp_path, petitions_dir)
    yield app
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


def test_a_new_install_is_readable_by_its_owner_only(embedded, tmp_path):
    instance = Path(embedded.instance_path)
    database = instance / "petition.sqlite3"
    assert embedded.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{database}"
    with embedded.app_context(), db.engine.connect() as connection:  # open: the WAL and its index exist
        connection.exec_driver_sql("SELECT count(*) FROM signature").scalar()
        hashing.key()
        assert mode(instance) == 0o700
        for name in ("secret_key", hashing.KEY_FILE, "petition.sqlite3", "petition.sqlite3-wal",
                     "petition.sqlite3-shm"):
            assert mode(instance / name) == 0o600, name

    client = embedded.test_client()
    assert submit(client, email="modes@example.org").status_code == 303
    run_sender(embedded)  # the embedded FileTransport
    outbox = Path(embedded.config["OUTBOX_DIR"])
    [message] = outbox.glob("*.eml")
    assert mode(outbox) == 0o700 and mode(message) == 0o600


def test_a_backup_is_readable_by_its_owner_only(embedded, tmp_path):
    target = tmp_path / "backups" / "petition-backup.sqlite3"
    target.parent.mkdir()
    result = embedded.test_cli_runner().invoke(args=["backup", str(target)])
    assert result.exit_code == 0, result.output
    assert mode(target) == 0o600
    assert embedded.test_cli_runner().invoke(args=["backup", str(target)]).exit_code == 1  # never overwrites
    assert mode(target) == 0o600 and target.stat().st_size > 0


def test_an_older_install_is_tightened_at_start(tmp_path, petitions_dir, loose_umask):
    instance = tmp_path / "instance"
    outbox = instance / "outbox"
    outbox.mkdir(parents=True, mode=0o755)
    instance.chmod(0o755)
    (instance / "secret_key").write_text("an old secret key\n")
    (instance / hashing.KEY_FILE).write_text("ab" * 32 + "\n")
    database = instance / "petition.sqlite3"
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x)")
    (outbox / "20200101T000000000000-1.eml").write_text("To: old@example.org\n\nold\n")
    for path in (database, instance / "secret_key", instance / hashing.KEY_FILE, *outbox.iterdir()):
        path.chmod(0o644)
    assert mode(database) == 0o644

    app = create_app({"TESTING": True, "INSTANCE_PATH": str(instance), "SECRET_KEY": None,
                      "SQLALCHEMY_DATABASE_URI": None, "SMTP_URL": None, "PETITIONS_DIR": str(petitions_dir)})
    assert app.config["SECRET_KEY"] == "an old secret key"
    assert mode(instance) == 0o700 and mode(outbox) == 0o700
    for path in (database, instance / "secret_key", instance / hashing.KEY_FILE, *outbox.iterdir()):
        assert mode(path) == 0o600, path.name
    with app.app_context(), db.engine.connect() as connection:
        connection.exec_driver_sql("SELECT count(*) FROM t").scalar()
        assert mode(instance / "petition.sqlite3-wal") == 0o600  # made by SQLite after the database's mode
        db.engine.dispose()


def test_a_database_elsewhere_is_created_owner_only(tmp_path, petitions_dir, loose_umask):
    database = tmp_path / "data" / "petition.sqlite3"
    database.parent.mkdir()
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "k",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}", "PETITIONS_DIR": str(petitions_dir)})
    assert mode(database) == 0o600
    assert mode(database.parent) == 0o755  # a folder of the operator's: theirs to choose
    with app.app_context():
        db.engine.dispose()
