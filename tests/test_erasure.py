"""Erased means gone from the files: after a withdrawal or the purge, the database's own files (SQLite's main
file, WAL and shared memory; PostgreSQL's table and index files and every WAL segment) and the outbox folder
hold none of the erased answers. Each test first finds its values in the same files, so the search works."""

from __future__ import annotations

import os
import random
import re
import secrets
import time
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import func, select

from petition import erasure, hashing
from petition.extensions import db
from petition.models import CONFIRMED, CompactionDue, OutboxMessage, Petition, Signature, Submission, utcnow

from conftest import SAME_ORIGIN, links_in, run_sender, sign_and_confirm, submit

# Tests of one engine's own behaviour run on that engine only (the app fixture takes its database from here).
ONLY_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
ONLY_POSTGRESQL = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)

CYRILLIC = "абвгдежзиклмнопрстуфхшэюя"


def answers(label: str) -> dict[str, str]:
    """A signer's answers made of values found nowhere else: a Cyrillic name, a distinctive address."""
    token = secrets.token_hex(5)
    letters = "".join(random.choice(CYRILLIC) for _ in range(8))
    return {"name": f"Жанар {letters.capitalize()}", "email": f"{label}-{token}@example.org",
            "postcode": f"PC{token}", "comment": f"remember {label} {token}"}


def traces(values: dict[str, str]) -> list[bytes]:
    return [value.encode("utf-8") for value in values.values()]


# ---------------------------------------------------------------- the database's files


def _sqlite_files(path: Path) -> dict[str, bytes]:
    return {path.name + suffix: (path.parent / (path.name + suffix)).read_bytes()
            for suffix in ("", "-wal", "-shm") if (path.parent / (path.name + suffix)).exists()}


_RELATIONS = """
WITH t AS (SELECT oid, reltoastrelid FROM pg_class
           WHERE oid IN ('submission'::regclass, 'signature'::regclass, 'outbox'::regclass)),
     r AS (SELECT oid FROM t UNION SELECT reltoastrelid FROM t WHERE reltoastrelid <> 0)
SELECT pg_relation_filepath(oid) FROM r
UNION SELECT pg_relation_filepath(indexrelid) FROM pg_index WHERE indrelid IN (SELECT oid FROM r)
"""


def _postgresql(statement: str) -> list:
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        result = connection.exec_driver_sql(statement)
        return result.all() if result.returns_rows else []


def _postgresql_files() -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(table and index files with all their forks and segments, WAL segments), read after a checkpoint has
    written every buffer."""
    _postgresql("CHECKPOINT")
    data = Path(_postgresql("SHOW data_directory")[0][0])
    assert data.is_dir(), "the test cluster's files must be on this machine"
    relations = {}
    for (relative,) in _postgresql(_RELATIONS):
        base = data / relative
        for path in base.parent.iterdir():
            if re.fullmatch(re.escape(base.name) + r"(_\w+)?(\.\d+)?", path.name):
                relations[relative + path.name[len(base.name):]] = path.read_bytes()
    wal = {path.name: path.read_bytes() for path in (data / "pg_wal").iterdir() if path.is_file()}
    return relations, wal


def database_files(app) -> dict[str, dict[str, bytes]]:
    """Every file of the database that can hold a signer's answers, by kind."""
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            return {"sqlite": _sqlite_files(Path(db.engine.url.database))}
        relations, wal = _postgresql_files()
        return {"tables and indexes": relations, "WAL": wal}


def fresh_wal(app) -> None:
    """PostgreSQL: begin a WAL segment of our own, so that what a test writes stays in the files read."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            _postgresql("SELECT pg_switch_wal()")
            _postgresql("CHECKPOINT")


def found(files: dict[str, dict[str, bytes]], values: dict[str, str]) -> list[str]:
    """Where each value is: ["email in WAL/000000010000000000000003", ...]."""
    return [f"{field} in {kind}/{name}" for kind, named in files.items() for name, content in named.items()
            for field, value in values.items() if value.encode("utf-8") in content]


def assert_everywhere(files: dict[str, dict[str, bytes]], values: dict[str, str]) -> None:
    """Each value is in each kind of file: the search can see it."""
    for kind, named in files.items():
        for field, value in values.items():
            assert any(value.encode("utf-8") in content for content in named.values()), (field, kind)


def compactions_due(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(CompactionDue))


def test_a_withdrawn_signature_leaves_nothing_in_the_database_files(app, client, mailbox):
    fresh_wal(app)
    gone, kept = answers("withdrawn"), answers("kept")
    manage = sign_and_confirm(app, client, mailbox, **gone)
    sign_and_confirm(app, client, mailbox, **kept)
    before = database_files(app)
    assert_everywhere(before, gone)  # the search finds what is there
    assert_everywhere(before, kept)

    assert client.post(manage, headers=SAME_ORIGIN).status_code == 303
    assert compactions_due(app) == 1
    run_sender(app, mailbox)
    assert compactions_due(app) == 0

    after = database_files(app)
    assert found(after, gone) == []
    with app.app_context():
        [left] = db.session.scalars(select(Signature)).all()
        assert left.email == kept["email"]  # the other signer's answers are intact and still found
    for field, value in kept.items():
        assert found({kind: named for kind, named in after.items() if kind != "WAL"}, {field: value}), field


def test_the_purge_leaves_nothing_in_the_database_files(app, runner):
    fresh_wal(app)
    purged, unconfirmed, expired, kept = (answers(label) for label in ("purged", "unconfirmed", "expired", "kept"))
    with app.app_context():
        closed, open_ = (db.session.scalar(select(Petition).where(Petition.slug == slug))
                         for slug in ("closed-one", "vadim-kuramshin"))
        for petition, values in ((closed, purged), (open_, kept)):
            signature = Signature(petition_id=petition.id, email_canonical=values["email"], country="KZ",
                                  status=CONFIRMED, created_at=datetime(2020, 3, 1), ip_hash="a" * 32, **values)
            db.session.add(signature)
            db.session.flush()
            db.session.add(OutboxMessage(signature_id=signature.id, kind="counted"))
        for petition, values, created in (
                (closed, unconfirmed, datetime(2020, 6, 1)),
                (open_, expired, utcnow() - timedelta(days=app.config["CONFIRM_DAYS"], hours=1))):
            submission = Submission(petition_id=petition.id, email_canonical=values["email"],
                                    mailbox=values["email"], country="KZ", created_at=created, **values)
            db.session.add(submission)
            db.session.flush()
            db.session.add(OutboxMessage(submission_id=submission.id, kind="confirm"))
        db.session.commit()
    erased = {f"{label} {field}": value for label, values in (("purged", purged), ("unconfirmed", unconfirmed),
                                                              ("expired", expired)) for field, value in values.items()}
    assert_everywhere(database_files(app), erased)

    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert "closed-one: 1 signatures anonymised" in result.output
    assert "2 unconfirmed submissions with expired links deleted" in result.output
    assert "Database files compacted" in result.output

    after = database_files(app)
    assert found(after, erased) == []
    assert compactions_due(app) == 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Submission)) == 0
        assert db.session.scalar(select(Signature.email).where(Signature.email != "")) == kept["email"]


@ONLY_SQLITE
def test_the_purge_vacuums_sqlite(app, runner):
    """Free pages are given back: the file holds no page that an erasure emptied."""
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == "closed-one"))
        db.session.add_all(Signature(petition_id=petition.id, name="x" * 100, email=f"p{n}@example.org",
                                     email_canonical=f"p{n}@example.org", country="KZ", comment="y" * 500,
                                     created_at=datetime(2020, 3, 1)) for n in range(300))
        db.session.commit()
        path = Path(db.engine.url.database)
    assert runner.invoke(args=["purge"]).exit_code == 0
    with app.app_context(), db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA freelist_count").scalar() == 0
        assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    assert (path.parent / (path.name + "-wal")).stat().st_size == 0


# ---------------------------------------------------------------- the outbox folder


def eml_files(app) -> dict[str, tuple[str, dict[str, str]]]:
    """The outbox folder's messages: file name -> (recipient, links)."""
    folder = Path(app.config["OUTBOX_DIR"])
    found = {}
    for path in sorted(folder.glob("*.eml")) if folder.is_dir() else []:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        found[path.name] = (message["To"].addresses[0].addr_spec, links_in(message))
    return found


def about(app, address: str, kind: str | None = None) -> list[str]:
    """The files of the messages to ``address`` (with a link of ``kind``)."""
    return [name for name, (to, links) in eml_files(app).items() if to == address and (kind is None or kind in links)]


def sign_by_eml(app, client, values: dict[str, str]) -> str:
    """Sign, confirm with the link of the .eml file, return the manage link of the receipt's file."""
    assert submit(client, **values).status_code == 303
    run_sender(app)  # the embedded FileTransport
    [confirm] = [eml_files(app)[name][1]["confirm"] for name in about(app, values["email"], "confirm")]
    assert client.post(confirm, headers=SAME_ORIGIN).status_code == 303
    run_sender(app)
    [manage] = [eml_files(app)[name][1]["manage"] for name in about(app, values["email"], "manage")]
    return manage


def test_the_eml_files_of_an_erased_signature_are_removed(app, client):
    gone, kept, later = answers("gone"), answers("kept"), answers("later")
    manage = sign_by_eml(app, client, gone)
    sign_by_eml(app, client, kept)
    folder = Path(app.config["OUTBOX_DIR"])
    assert any(gone["postcode"].encode() in path.read_bytes() for path in folder.glob("*.eml"))
    assert len(about(app, gone["email"])) == 2

    assert client.post(manage, headers=SAME_ORIGIN).status_code == 303
    # Before the sender's round a new message may take an erased one's outbox id (SQLite reuses the
    # highest): the older file of that id is still the erased signer's.
    assert submit(client, **later).status_code == 303
    run_sender(app)

    assert about(app, gone["email"]) == []
    assert not any(gone["postcode"].encode() in path.read_bytes() for path in folder.glob("*.eml"))
    assert len(about(app, kept["email"], "manage")) == 1
    assert len(about(app, later["email"], "confirm")) == 1
    assert about(app, kept["email"], "confirm") == []  # went with its submission, confirmed


def test_the_purge_removes_the_eml_files_of_purged_signatures(app, client, runner):
    values = answers("purged")
    sign_by_eml(app, client, values)
    with app.app_context():  # the petition closed long ago
        petition = db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin"))
        petition.closed_early_at = datetime(2020, 1, 1)
        db.session.commit()
    assert len(about(app, values["email"], "manage")) == 1
    assert runner.invoke(args=["purge"]).exit_code == 0
    assert about(app, values["email"]) == []


@ONLY_SQLITE
def test_a_compaction_that_finds_the_database_busy_stays_due(app, client, mailbox):
    manage = sign_and_confirm(app, client, mailbox, **answers("busy"))
    with app.app_context():
        reader = db.engine.raw_connection()  # a long read keeps the WAL from being truncated
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM signature").fetchall()
            started = time.monotonic()
            assert client.post(manage, headers=SAME_ORIGIN).status_code == 303
            assert time.monotonic() - started < 1  # a visitor never waits for the WAL
            run_sender(app, mailbox)
            assert compactions_due(app) == 1  # left for the next round
        finally:
            reader.execute("ROLLBACK")
            reader.close()
    run_sender(app, mailbox)
    assert compactions_due(app) == 0


# ---------------------------------------------------------------- hashes of client addresses


def test_the_purge_erases_old_address_hashes_and_replaces_the_key(app, runner):
    days = app.config["IP_HASH_DAYS"]
    old, recent = utcnow() - timedelta(days=days, hours=1), utcnow() - timedelta(days=days - 1)
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin"))
        for n, created in enumerate((old, recent)):
            db.session.add(Signature(petition_id=petition.id, name="A", email=f"s{n}@example.org",
                                     email_canonical=f"s{n}@example.org", country="KZ", created_at=created,
                                     ip_hash=f"{n}" * 32))
            db.session.add(Submission(petition_id=petition.id, name="B", email=f"u{n}@example.org",
                                      email_canonical=f"u{n}@example.org", mailbox=f"u{n}@example.org",
                                      country="KZ", created_at=created, ip_hash=f"{n}" * 32))
        db.session.commit()
        hashing.key()
    key_file = Path(app.instance_path) / hashing.KEY_FILE
    first_key = key_file.read_text()
    assert "2 address hashes older than" in runner.invoke(args=["purge", "--dry-run"]).output
    a_while_ago = time.time() - (days + 1) * 86400
    os.utime(key_file, (a_while_ago, a_while_ago))

    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert f"2 address hashes older than {days} days erased" in result.output
    assert "Hash key replaced" in result.output
    assert key_file.read_text() != first_key
    with app.app_context():
        for model in (Signature, Submission):
            assert db.session.scalars(select(model.ip_hash).order_by(model.id)).all() == [None, "1" * 32]

    again = runner.invoke(args=["purge"])
    assert "0 address hashes" in again.output and f"Hash key younger than {days} days: kept" in again.output


def test_settle_is_cheap_and_marks_nothing_by_itself(app):
    with app.app_context():
        started = time.monotonic()
        erasure.settle()
        assert time.monotonic() - started < 0.5
        assert erasure.due() is False
        assert erasure.compact() is True  # nothing due: nothing done


# ---------------------------------------------------------------- a PostgreSQL role without the rights


LIMITED = "petition_compactor"


@pytest.fixture
def limited_app(app):
    """The app on a role that owns the tables that hold answers, as a service's role does after migrating
    them, but is no superuser: it may not run pg_switch_wal() or CHECKPOINT."""
    with app.app_context():
        url = db.engine.url
        for statement in (f"DROP ROLE IF EXISTS {LIMITED}", f"CREATE ROLE {LIMITED} LOGIN",
                          f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {LIMITED}",
                          f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {LIMITED}",
                          *(f"ALTER TABLE {table} OWNER TO {LIMITED}" for table in erasure.TABLES)):
            _postgresql(statement)
    from petition import create_app

    limited = create_app({**{key: app.config[key] for key in (
        "TESTING", "INSTANCE_PATH", "SECRET_KEY", "SMTP_URL", "BASE_URL", "PETITIONS_DIR", "SITE_DIR")},
        "SQLALCHEMY_DATABASE_URI": url.set(username=LIMITED).render_as_string(hide_password=False)})
    yield limited
    with limited.app_context():
        for engine in db.engines.values():
            engine.dispose()
    with app.app_context():
        for statement in (*(f"ALTER TABLE {table} OWNER TO {url.username}" for table in erasure.TABLES),
                          f"DROP OWNED BY {LIMITED}", f"DROP ROLE {LIMITED}"):
            _postgresql(statement)


@ONLY_POSTGRESQL
def test_a_role_that_may_not_switch_the_wal_warns_once_and_goes_on(app, limited_app, client, mailbox, caplog,
                                                                   monkeypatch):
    monkeypatch.setattr(erasure, "_warned", set())
    gone = answers("limited")
    manage = sign_and_confirm(app, client, mailbox, **gone)
    with limited_app.app_context():
        assert db.session.scalar(select(func.current_user())) == LIMITED
    assert limited_app.test_client().post(manage, headers=SAME_ORIGIN).status_code == 303
    with caplog.at_level("WARNING", logger="petition.erasure"):
        run_sender(limited_app, mailbox)
        with limited_app.app_context():  # a second erasure: no second warning
            erasure.mark()
            db.session.commit()
        run_sender(limited_app, mailbox)
    assert compactions_due(limited_app) == 0  # nothing stays due for ever
    warnings = [record.getMessage() for record in caplog.records if record.name == "petition.erasure"]
    assert len(warnings) == 1 and "pg_switch_wal" in warnings[0]
    assert found({"logs": {"warning": warnings[0].encode()}}, gone) == []
    assert found({"tables": database_files(app)["tables and indexes"]}, gone) == []  # VACUUM FULL ran


@ONLY_POSTGRESQL
def test_the_grants_the_documentation_names_are_enough(app, limited_app, client, mailbox, caplog, monkeypatch):
    with app.app_context():
        assert db.engine.dialect.server_version_info >= (15,), "the role pg_checkpoint came with PostgreSQL 15"
        fresh_wal(app)
        _postgresql(f"GRANT EXECUTE ON FUNCTION pg_switch_wal() TO {LIMITED}")
        _postgresql(f"GRANT pg_checkpoint TO {LIMITED}")
    monkeypatch.setattr(erasure, "_warned", set())
    gone = answers("granted")
    manage = sign_and_confirm(app, client, mailbox, **gone)
    assert_everywhere(database_files(app), gone)
    assert limited_app.test_client().post(manage, headers=SAME_ORIGIN).status_code == 303
    with caplog.at_level("WARNING", logger="petition.erasure"):
        run_sender(limited_app, mailbox)
    assert [r for r in caplog.records if r.name == "petition.erasure"] == []
    assert found(database_files(app), gone) == []


@ONLY_POSTGRESQL
def test_an_open_snapshot_that_may_see_the_erased_row_postpones_the_compaction(app, client, mailbox):
    """VACUUM FULL keeps a deleted row that an older snapshot may still read, even one on other tables."""
    fresh_wal(app)
    gone = answers("snapshot")
    manage = sign_and_confirm(app, client, mailbox, **gone)
    with app.app_context():
        reader = db.engine.raw_connection()
        try:
            cursor = reader.cursor()
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("SELECT count(*) FROM petition")  # the snapshot is taken, no lock on the signers
            assert client.post(manage, headers=SAME_ORIGIN).status_code == 303
            run_sender(app, mailbox)
            assert compactions_due(app) == 1
        finally:
            reader.rollback()
            reader.close()
    run_sender(app, mailbox)
    assert compactions_due(app) == 0
    assert found(database_files(app), gone) == []
