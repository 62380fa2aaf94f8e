"""The sender against outages of its real parts: PostgreSQL stopped in the middle of a batch, the SMTP server
away and back, a message refused and then taken. Every message arrives once, and the sender keeps going."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

import pg_cluster
from conftest import Inbox, SmtpServer, free_port, links_in, migrated_app, need, submit
from petition import mail, outbox, sender
from petition.extensions import db
from petition.models import OutboxMessage, Petition, Submission, utcnow

PETITION = Path(sys.executable).with_name("petition")
MARK_LOST = "went out but could not be recorded as sent"


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.05)


def queue(app, numbers) -> None:
    """Outbox rows ready to go, as the sender's decisions leave them."""
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin"))
        for number in numbers:
            address = f"queued{number}@example.org"
            submission = Submission(petition_id=petition.id, name=f"Queued {number}", email=address,
                                    email_canonical=address, mailbox=address, country="KZ", decided_at=utcnow(),
                                    mailed_at=utcnow())
            db.session.add(submission)
            db.session.flush()
            db.session.add(OutboxMessage(submission_id=submission.id, kind=mail.CONFIRM))
        db.session.commit()


def unsent(app) -> int:
    with app.app_context():
        try:
            return db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                     .where(OutboxMessage.sent_at.is_(None)))
        finally:
            db.session.remove()


def once_each(messages) -> Counter:
    """How often each message arrived, by Message-ID and recipient."""
    return Counter((m["Message-ID"], m["To"].addresses[0].addr_spec) for m in messages)


class Interrupting(Inbox):
    """Takes every message; on the ``at``-th runs ``action`` before answering, so the sender waits for the
    server's 250 while ``action`` (stopping the database) happens."""

    def __init__(self, at: int, action) -> None:
        super().__init__()
        self.at, self.action, self.done = at, action, threading.Event()

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        if len(self.messages) == self.at and not self.done.is_set():
            self.action()
            self.done.set()
        return reply


class Flaky(Inbox):
    """Keeps every message it is given, and answers the first one with ``reply`` instead of taking it."""

    def __init__(self, reply: str) -> None:
        super().__init__()
        self.reply, self.tried = reply, []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.content, policy=policy.default)
        self.tried.append(message)
        if len(self.tried) == 1:
            return self.reply
        self.messages.append(message)
        return "250 Message accepted for delivery"


# ---------------------------------------------------------------- PostgreSQL stopped mid-batch


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of this test's own, which it may stop and start."""
    if pg_cluster.bindir() is None:
        need("PostgreSQL (Debian package postgresql)")
    with pg_cluster.cluster(free_port()) as cluster:
        yield cluster


def dispose(app) -> None:
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


def sender_process(app, tmp_path: Path, petitions_dir: Path, log: Path) -> subprocess.Popen:
    """``petition send-mail --loop`` as deploy/systemd/petition-mail.service runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETITION_")}
    env.update({
        "PETITION_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "PETITION_SMTP_URL": app.config["SMTP_URL"],
        "PETITION_INSTANCE_PATH": str(tmp_path / "instance"),
        "PETITION_SECRET_KEY": "test secret key",
        "PETITION_BASE_URL": "http://petition.test",
        "PETITION_PETITIONS_DIR": str(petitions_dir),
    })
    with log.open("wb") as output:
        return subprocess.Popen([str(PETITION), "send-mail", "--loop", "--interval", "0.2"], cwd=tmp_path,
                                env=env, stdout=output, stderr=subprocess.STDOUT)


@pytest.mark.postgres
@pytest.mark.slow
def test_postgresql_stopped_mid_batch_every_message_arrives_once_and_the_sender_goes_on(
        own_postgres, tmp_path, petitions_dir):
    batch, stopped_at = 30, 17
    inbox = Interrupting(stopped_at, own_postgres.stop)
    server = SmtpServer()
    server.inbox = inbox
    server.start()
    app = migrated_app(own_postgres.url, tmp_path, petitions_dir, server.url)
    queue(app, range(batch))
    dispose(app)  # the test's own connections would be cut by the stop anyway
    log = tmp_path / "sender.log"
    process = sender_process(app, tmp_path, petitions_dir, log)
    try:
        # The database stops while the server takes message 17: it went out, and cannot be recorded.
        wait_until(inbox.done.is_set, 30, "the sender to reach the stop")
        wait_until(lambda: MARK_LOST in log.read_text(), 15, "the sender to notice")
        wait_until(lambda: "the database is unavailable" in log.read_text(), 15, "the loop to wait")
        assert process.poll() is None  # waiting it out, not exited
        assert len(inbox.messages) == stopped_at
        own_postgres.start()

        wait_until(lambda: len(inbox.messages) >= batch, 60, "the rest of the batch")
        wait_until(lambda: unsent(app) == 0, 15, "every row recorded as sent")
        assert process.poll() is None
        with app.app_context():  # each tried once: the one sent during the outage was recorded, not sent again
            assert set(db.session.scalars(select(OutboxMessage.attempts))) == {1}
            db.session.remove()

        client = app.test_client()  # and mail queued after the restart goes out as usual
        for number in range(2):
            assert submit(client, email=f"after{number}@example.org").status_code == 303
        wait_until(lambda: len(inbox.messages) >= batch + 2, 30, "the mail queued after the restart")
        wait_until(lambda: unsent(app) == 0, 15, "every row recorded as sent")
        confirm = links_in(inbox.messages[-1])["confirm"]
        assert confirm.startswith("/petitions/vadim-kuramshin/confirm/")
        assert process.poll() is None

        process.send_signal(signal.SIGTERM)  # as systemd stops it: between two messages, at once here
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        server.stop()
        dispose(app)

    arrived = once_each(inbox.messages)
    assert set(arrived.values()) == {1}, [key for key, times in arrived.items() if times > 1]
    assert {address for _, address in arrived} == (
        {f"queued{n}@example.org" for n in range(batch)} | {f"after{n}@example.org" for n in range(2)})
    text = log.read_text()
    assert text.count(MARK_LOST) == 1  # the one message at risk, said once
    assert "1 e-mail(s) sent while the database was away now recorded as sent" in text
    assert "mail sender: working again" in text
    assert "Traceback" not in text and "@example.org" not in text and "/confirm/" not in text


# ---------------------------------------------------------------- the SMTP server away and back


@pytest.mark.slow
def test_smtp_down_then_up_the_loop_stays_alive_and_delivers_each_once(app, client, smtp_server, caplog):
    app.config["SMTP_URL"] = smtp_server.url
    smtp_server.stop()
    with caplog.at_level(logging.INFO, logger="petition"):
        stop = sender.start(app, interval=0.2)
        [thread] = [t for t in threading.enumerate() if t.name == "mail-sender" and t.is_alive()]
        try:
            for number in range(3):
                assert submit(client, email=f"patient{number}@example.org").status_code == 303

            def away() -> int:
                return caplog.text.count("the mail server is unavailable (ConnectionRefusedError")

            wait_until(lambda: away() >= 2, 15, "two failed rounds")  # it tried, waited and tried again
            assert thread.is_alive() and smtp_server.inbox.messages == []
            with app.app_context():
                rows = db.session.scalars(select(OutboxMessage)).all()
                assert [(r.attempts, r.sent_at, r.failed_at) for r in rows] == [(0, None, None)] * 3
                db.session.remove()

            smtp_server.start()
            wait_until(lambda: len(smtp_server.inbox.messages) >= 3, 15, "the mail after the server's return")
            wait_until(lambda: "mail sender: working again" in caplog.text, 5, "the loop to say so")
            assert submit(client, email="later@example.org").status_code == 303  # back to normal: at once
            wait_until(lambda: len(smtp_server.inbox.messages) >= 4, 10, "the next message")
            wait_until(lambda: unsent(app) == 0, 10, "every row recorded as sent")
            assert thread.is_alive()
        finally:
            stop.set()
            outbox.wake_sender()
            thread.join(timeout=10)
    assert not thread.is_alive()
    arrived = once_each(smtp_server.inbox.messages)
    assert set(arrived.values()) == {1}
    assert {address for _, address in arrived} == (
        {f"patient{n}@example.org" for n in range(3)} | {"later@example.org"})
    ours = [r for r in caplog.records if r.name.startswith("petition")]
    assert not any(r.exc_info for r in ours)  # one line each, no traceback
    assert "@example.org" not in caplog.text
    failed = [r.getMessage() for r in ours if "unavailable" in r.getMessage()]
    assert all(line.startswith("mail sender: the mail server is unavailable (ConnectionRefusedError: ")
               for line in failed)
    assert [line.rsplit(";", 1)[1] for line in failed[:2]] == [" trying again in 1 s", " trying again in 2 s"]


def test_the_loop_waits_longer_after_each_failure_up_to_its_cap(app, smtp_server, caplog):
    """1, 2, 4 … seconds, capped: here at 3 s, with the stop waited for rather than slept through."""
    app.config["SMTP_URL"] = smtp_server.url
    smtp_server.stop()
    queue(app, range(1))
    stop = threading.Event()
    delays: list[float] = []

    class Clocked(threading.Event):
        """The loop's stop event, noting each wait the loop asks of it, and ending the loop after four."""

        def wait(self, timeout=None):
            delays.append(timeout)
            if len(delays) == 4:
                stop.set()
            return stop.is_set()

        def is_set(self):
            return stop.is_set()

    with caplog.at_level(logging.WARNING, logger="petition.sender"):
        sender.run(app, Clocked(), interval=0.2, retry_max=3.0)
    assert delays == [1.0, 2.0, 3.0, 3.0]
    assert len(caplog.records) == 4 and not any(r.exc_info for r in caplog.records)


# ---------------------------------------------------------------- one Message-ID per row


@pytest.mark.parametrize("reply, outage", [
    ("451 4.3.0 Temporary failure, try later", False),  # a refusal of this message: one try charged
    ("421 4.3.2 Service shutting down", True),  # the server going away: no try charged
])
def test_the_message_id_is_the_same_on_a_failed_and_a_successful_try(app, client, reply, outage):
    from aiosmtpd.controller import Controller

    inbox = Flaky(reply)
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        app.config["SMTP_URL"] = f"smtp://127.0.0.1:{port}"
        assert submit(client, email="twice@example.org", name="Twice Tried").status_code == 303
        assert submit(client, email="other@example.org").status_code == 303
        if outage:
            with pytest.raises(mail.Unavailable, match="SMTPServerDisconnected|SMTPDataError"):
                run_round(app)
        else:
            assert run_round(app) == (1, 1)
            with app.app_context():  # its back-off passed
                for item in db.session.scalars(select(OutboxMessage).where(OutboxMessage.sent_at.is_(None))):
                    item.next_attempt_at = utcnow()
                db.session.commit()
        assert run_round(app) == ((2, 0) if outage else (1, 0))
        inbox.wait_for(2)
    finally:
        controller.stop()
    first = inbox.tried[0]
    assert first["To"].addresses[0].addr_spec == "twice@example.org"
    [again] = [m for m in inbox.messages if m["To"].addresses[0].addr_spec == "twice@example.org"]
    assert first["Message-ID"] == again["Message-ID"]
    assert len({m["Message-ID"] for m in inbox.messages}) == 2  # one for each row
    message_id = first["Message-ID"]
    token = links_in(again)["confirm"].rsplit("/", 1)[1]
    for personal in ("twice", "Twice", "example.org", token):
        assert personal not in message_id
    assert message_id.startswith("<") and message_id.endswith("@localhost>")
    with app.app_context():
        item = db.session.scalar(select(OutboxMessage).order_by(OutboxMessage.id))
        assert (item.attempts, item.failed_at) == ((1, None) if outage else (2, None))
        # As after a crash: composed afresh from the row, the same ID.
        with app.test_request_context():
            assert mail.compose(item)[0]["Message-ID"] == message_id


def run_round(app):
    with app.app_context():
        return sender.run_once()


# ---------------------------------------------------------------- the command without --loop


@pytest.mark.parametrize("part", ["database", "mail server"])
def test_send_mail_once_with_a_part_away_exits_with_one_line(tmp_path, petitions_dir, part):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETITION_")}
    env.update({"PETITION_INSTANCE_PATH": str(tmp_path / "instance"), "PETITION_SECRET_KEY": "test secret key",
                "PETITION_PETITIONS_DIR": str(petitions_dir),
                "PETITION_SMTP_URL": f"smtp://127.0.0.1:{free_port()}"})  # nothing listens there
    if part == "database":
        env["PETITION_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
        (tmp_path / "instance").mkdir()  # an instance whose database is away
    else:
        app = migrated_app(f"sqlite:///{tmp_path / 'instance' / 'petition.sqlite3'}", tmp_path, petitions_dir, None)
        queue(app, range(1))
        dispose(app)
    result = subprocess.run([str(PETITION), "send-mail"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert f"Error: e-mails not sent: the {part} is unavailable" in result.stderr
    assert "Traceback" not in result.stderr and "@example.org" not in result.stderr
