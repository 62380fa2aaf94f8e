"""E-mail through a real SMTP server on loopback: the whole path from signing to a counted signature, and what
happens to a message no server will take."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from email import message_from_string, policy
from pathlib import Path

import pytest
from sqlalchemy import select, update

from petition import accounts, intake, mail, outbox, sender
from petition.extensions import db
from petition.models import OutboxMessage, Petition, Signature, Submission, utcnow

from conftest import (SAME_ORIGIN, Inbox, answers_in, csrf_token, free_port, links_in, run_sender,
                      sign_and_confirm, submit)

COUNT = "/api/petitions/vadim-kuramshin"
NON_ASCII = "иван@example.org"


def count(client) -> int:
    return client.get(COUNT).json["signature_count"]


def outbox_rows(app) -> list[OutboxMessage]:
    with app.app_context():
        found = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        db.session.expunge_all()
        return found


def make_due(app) -> None:
    """Let the back-off pass: every waiting row is due again."""
    with app.app_context():
        db.session.execute(update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()


def petition_id(app, slug: str = "vadim-kuramshin") -> int:
    with app.app_context():
        return db.session.scalar(select(Petition.id).where(Petition.slug == slug))


def recipient(message) -> str:
    return message["To"].addresses[0].addr_spec


def parsed(raw: bytes):
    """A message as an SMTPUTF8 server or the .eml outbox has it: its headers may be UTF-8."""
    return message_from_string(raw.decode("utf-8"), policy=policy.default)


class Envelopes(Inbox):
    """The loopback server's inbox, with each message's envelope as the server received it."""

    def __init__(self, rcpt_reply: str | None = None) -> None:
        super().__init__()
        self.envelopes: list[tuple[str, list[str], bool]] = []
        self.rcpt_reply = rcpt_reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.smtp_utf8))
        self.messages.append(parsed(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def own_server():
    """Start a loopback aiosmtpd server with the given handler and options; stopped after the test."""
    started = []

    def start(handler, **options) -> str:
        from aiosmtpd.controller import Controller

        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
        controller.start()
        started.append(controller)
        return f"smtp://127.0.0.1:{port}"

    yield start
    for controller in started:
        controller.stop()


def log_in_as_organiser(app):
    """A client of its own, logged in as an organiser."""
    password = "correct horse battery staple"
    with app.app_context():
        accounts.add("organiser@example.org", password)
    office = app.test_client()
    token = csrf_token(office, "/organisers/login")
    response = office.post("/organisers/login", data={"csrf_token": token, "email": "organiser@example.org",
                                                      "password": password})
    assert response.status_code == 303
    return office


def undelivered_section(office) -> str:
    page = office.get("/organisers/petitions/vadim-kuramshin").get_data(as_text=True)
    return page.split("<h2>E-mails not delivered</h2>", 1)[1]


# ---------------------------------------------------------------- the whole path


def test_sign_email_confirm_receipt_count_through_real_smtp(app, client, smtp_server):
    inbox = smtp_server.inbox
    app.config["SMTP_URL"] = smtp_server.url
    assert submit(client, email="signer@example.org", name="Signer Name").status_code == 303
    assert count(client) == 0

    assert run_sender(app) == (1, 0)
    [message] = inbox.wait_for(1)
    assert recipient(message) == "signer@example.org"
    assert message["To"].addresses[0].display_name == ""  # a name anyone could type is not put in a header
    assert message["From"] == "Campaign Kazakhstan <petitions@localhost>"
    assert message["Message-ID"] and message["Date"] and message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    assert {part.get_content_type() for part in message.iter_parts()} == {"text/plain", "text/html"}
    assert message["Subject"].startswith("Please confirm your signature")
    assert "Urgent action for Vadim Kuramshin" in message["Subject"]
    assert "Name:                  Signer Name" in answers_in(message)

    confirm = links_in(message)["confirm"]
    page = client.get(confirm)
    assert page.status_code == 200 and "Signer Name" in page.get_data(as_text=True)
    assert count(client) == 0  # opening the link, as a mail scanner would, changes nothing

    done = client.post(confirm, headers=SAME_ORIGIN)
    assert done.status_code == 303
    assert client.get(done.headers["Location"]).status_code == 200
    api = client.get(COUNT).json
    assert api["signature_count"] == 1 and api["by_country"] == {"KZ": 1}

    assert run_sender(app) == (1, 0)
    receipt = inbox.wait_for(2)[1]
    assert recipient(receipt) == "signer@example.org"
    assert receipt["Subject"].startswith("Your signature is confirmed")
    manage = links_in(receipt)["manage"]
    assert "confirm" not in links_in(receipt)
    page = client.get(manage)
    assert page.status_code == 200 and "Signer Name" in page.get_data(as_text=True)

    assert run_sender(app) == (0, 0)  # nothing is sent twice
    assert len(inbox.messages) == 2 and count(client) == 1


def test_a_repeat_after_confirmation_mails_a_notice_that_can_replace_the_details(app, client, smtp_server):
    inbox = smtp_server.inbox
    app.config["SMTP_URL"] = smtp_server.url
    submit(client)
    run_sender(app)
    client.post(links_in(inbox.wait_for(1)[0])["confirm"], headers=SAME_ORIGIN)
    run_sender(app)  # the receipt
    assert submit(client, name="Changed Name", country="GB", postcode="Leeds", comment="Now from Leeds",
                  updates="y").status_code == 303
    assert run_sender(app) == (1, 0)
    notice = inbox.wait_for(3)[2]
    assert recipient(notice) == "supporter@example.org"
    assert notice["Subject"].startswith("You have already signed")
    text = answers_in(notice)
    for line in ("Name:                  Changed Name", "Country:               United Kingdom",
                 "Town or postcode:      Leeds", "Comment:               Now from Leeds",
                 "Name shown publicly:   No", "Keep me informed:      Yes"):
        assert line in text, line
    links = links_in(notice)
    assert {"confirm", "manage"} <= set(links)
    with app.app_context():
        assert db.session.scalar(select(Signature.name)) == "Вадим Курамшин"  # nothing replaced by mailing

    page = client.get(links["confirm"]).get_data(as_text=True)
    assert "Changed Name" in page and "Replace my signature" in page
    assert client.post(links["confirm"], headers=SAME_ORIGIN).status_code == 303
    with app.app_context():
        [signature] = db.session.scalars(select(Signature)).all()
        assert (signature.name, signature.country, signature.postcode, signature.updates) == (
            "Changed Name", "GB", "Leeds", True)
    api = client.get(COUNT).json
    assert api["signature_count"] == 1 and api["by_country"] == {"GB": 1}


def test_the_background_sender_delivers_without_being_asked(app, client, smtp_server):
    inbox = smtp_server.inbox
    app.config["SMTP_URL"] = smtp_server.url
    stop = sender.start(app, interval=0.2)
    try:
        assert submit(client, email="background@example.org").status_code == 303
        [message] = inbox.wait_for(1)
        assert recipient(message) == "background@example.org"
        assert client.post(links_in(message)["confirm"], headers=SAME_ORIGIN).status_code == 303
        receipt = inbox.wait_for(2)[1]  # the receipt too, with nobody running the sender
        assert "manage" in links_in(receipt)
    finally:
        stop.set()
        outbox.wake_sender()
        for thread in threading.enumerate():
            if thread.name == "mail-sender":
                thread.join(timeout=10)
    assert len(inbox.messages) == 2 and count(client) == 1


# ---------------------------------------------------------------- addresses that are not ASCII


def test_a_non_ascii_address_is_delivered_through_a_server_that_offers_smtputf8(app, client, own_server):
    inbox = Envelopes()
    app.config["SMTP_URL"] = own_server(inbox, enable_SMTPUTF8=True)
    assert submit(client, email=NON_ASCII).status_code == 303
    assert run_sender(app) == (1, 0)
    [message] = inbox.wait_for(1)
    [(mail_from, recipients, smtp_utf8)] = inbox.envelopes
    assert recipients == [NON_ASCII] and smtp_utf8 is True
    assert mail_from == "petitions@localhost"
    assert recipient(message) == NON_ASCII
    assert client.post(links_in(message)["confirm"], headers=SAME_ORIGIN).status_code == 303
    with app.app_context():
        assert db.session.scalar(select(Signature.email)) == NON_ASCII
    assert count(client) == 1
    assert run_sender(app) == (1, 0)  # and the receipt goes the same way
    assert inbox.wait_for(2)[1]["Subject"].startswith("Your signature is confirmed")
    assert [envelope[1] for envelope in inbox.envelopes] == [[NON_ASCII], [NON_ASCII]]


def test_a_non_ascii_address_is_given_up_at_once_by_a_server_without_smtputf8(app, client, own_server):
    """A server without SMTPUTF8 will never take the message: it is not retried, and organisers see it."""
    inbox = Envelopes()
    app.config["SMTP_URL"] = own_server(inbox, enable_SMTPUTF8=False)
    submit(client, email=NON_ASCII)
    submit(client, email="plain@example.org")
    assert run_sender(app) == (1, 1)
    [delivered] = inbox.wait_for(1)
    assert recipient(delivered) == "plain@example.org"  # the others still go
    [refused] = [item for item in outbox_rows(app) if item.sent_at is None]
    assert refused.failed_at is not None and refused.attempts == 1
    assert refused.last_error.startswith("SMTPNotSupportedError")

    make_due(app)
    assert run_sender(app) == (0, 0)  # never tried again
    assert [item.attempts for item in outbox_rows(app) if item.id == refused.id] == [1]
    assert [envelope[1] for envelope in inbox.envelopes] == [["plain@example.org"]]
    with app.app_context():
        assert [item.id for item in outbox.given_up(petition_id(app))] == [refused.id]
        assert outbox.given_up(petition_id(app, "closed-one")) == []

    section = undelivered_section(log_in_as_organiser(app))
    assert "<td>confirm</td><td>1</td>" in section and "SMTPNotSupportedError" in section
    assert NON_ASCII not in section  # the address stays in the database


def test_without_smtp_a_non_ascii_address_is_written_to_an_eml_file(app, client):
    submit(client, email=NON_ASCII)
    assert run_sender(app) == (1, 0)
    [eml] = Path(app.config["OUTBOX_DIR"]).glob("*.eml")
    message = parsed(eml.read_bytes())
    assert recipient(message) == NON_ASCII
    assert client.post(links_in(message)["confirm"], headers=SAME_ORIGIN).status_code == 303


# ---------------------------------------------------------------- servers that fail


def test_smtp_down_keeps_every_email_and_delivers_it_later(app, client, smtp_server):
    """A server that cannot be reached is no message's fault: the round stops at the first, charges no try, and
    every row stays due for when the server is back."""
    inbox = smtp_server.inbox
    app.config["SMTP_URL"] = smtp_server.url
    smtp_server.stop()
    for number in range(3):  # signing goes on while the mail server is down
        assert submit(client, email=f"signer{number}@example.org").status_code == 303
    with pytest.raises(mail.Unavailable, match=r"the mail server is unavailable \(ConnectionRefusedError\)"):
        run_sender(app)
    items = outbox_rows(app)
    assert all(i.sent_at is None and i.failed_at is None and i.attempts == 0 and i.next_attempt_at <= utcnow()
               for i in items)
    assert "ConnectionRefusedError" in items[0].last_error  # why the queue waits, for the operator
    assert [i.last_error for i in items[1:]] == [None, None]  # not tried: the first showed the server away
    smtp_server.start()
    assert run_sender(app) == (3, 0)
    received = {recipient(m) for m in inbox.wait_for(3)}
    assert received == {f"signer{n}@example.org" for n in range(3)}


def test_a_server_away_for_long_never_makes_a_message_given_up(app, client, smtp_server):
    app.config["SMTP_URL"] = smtp_server.url
    smtp_server.stop()
    submit(client)
    for _ in range(outbox.MAX_ATTEMPTS + 2):
        with pytest.raises(mail.Unavailable):
            run_sender(app)
    [item] = outbox_rows(app)
    assert (item.attempts, item.failed_at, item.sent_at) == (0, None, None)
    smtp_server.start()
    assert run_sender(app) == (1, 0)
    assert len(smtp_server.inbox.wait_for(1)) == 1


def test_a_server_that_keeps_refusing_is_tried_at_most_max_attempts_times(app, client, own_server):
    inbox = Envelopes(rcpt_reply="451 4.3.0 Try again later")
    app.config["SMTP_URL"] = own_server(inbox)
    submit(client)
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        assert run_sender(app) == (0, 1)
        [item] = outbox_rows(app)
        assert item.attempts == attempt
        assert (item.failed_at is not None) == (attempt == outbox.MAX_ATTEMPTS)
        make_due(app)
    with app.app_context():
        assert [i.attempts for i in outbox.given_up(petition_id(app))] == [outbox.MAX_ATTEMPTS]
    inbox.rcpt_reply = None
    assert run_sender(app) == (0, 0)  # given up is given up: the server's change of mind does not revive it
    assert [i.attempts for i in outbox_rows(app)] == [outbox.MAX_ATTEMPTS]
    assert inbox.messages == []
    section = undelivered_section(log_in_as_organiser(app))
    assert f"<td>confirm</td><td>{outbox.MAX_ATTEMPTS}</td>" in section and "SMTPRecipientsRefused" in section


@pytest.mark.parametrize("reply, given_up", [
    ("550 5.1.1 No such user here", True),  # for good
    ("450 4.2.1 Mailbox busy, try later", False),  # for now
])
def test_a_refused_recipient_is_given_up_only_when_refused_for_good(app, client, own_server, reply, given_up):
    inbox = Envelopes(rcpt_reply=reply)
    app.config["SMTP_URL"] = own_server(inbox)
    submit(client)
    assert run_sender(app) == (0, 1)
    [item] = outbox_rows(app)
    assert item.attempts == 1 and item.last_error.startswith("SMTPRecipientsRefused")
    assert (item.failed_at is not None) is given_up
    with app.app_context():
        assert len(outbox.given_up(petition_id(app))) == (1 if given_up else 0)
    inbox.rcpt_reply = None  # the server takes it now
    make_due(app)
    assert run_sender(app) == ((0, 0) if given_up else (1, 0))
    assert len(inbox.messages) == (0 if given_up else 1)


def test_backoff_grows_and_is_capped():
    assert [outbox.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert outbox.backoff(50) == outbox.MAX_BACKOFF
    assert sum(outbox.backoff(n).total_seconds() for n in range(1, outbox.MAX_ATTEMPTS)) < 3 * 3600


# ---------------------------------------------------------------- the embedded default and the transports


def test_without_smtp_messages_become_eml_files_and_the_log_says_so_without_the_link(app, client, caplog):
    submit(client, email="local@example.org")
    with caplog.at_level(logging.INFO, logger="petition.mail"):
        assert run_sender(app) == (1, 0)
    [eml] = Path(app.config["OUTBOX_DIR"]).glob("*.eml")
    message = parsed(eml.read_bytes())
    assert recipient(message) == "local@example.org"
    assert message["To"].addresses[0].display_name == ""
    confirm = links_in(message)["confirm"]
    logged = caplog.text
    assert f"e-mail written to {eml}" in logged  # a local user finds the file
    assert confirm.rsplit("/", 1)[1] not in logged and "local@example.org" not in logged  # never the link

    assert client.post(confirm, headers=SAME_ORIGIN).status_code == 303
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="petition.mail"):
        assert run_sender(app) == (1, 0)
    emls = sorted(Path(app.config["OUTBOX_DIR"]).glob("*.eml"))
    assert len(emls) == 2
    receipt = parsed(emls[-1].read_bytes())
    manage = links_in(receipt)["manage"]
    assert manage.rsplit("/", 1)[1] not in caplog.text
    assert count(client) == 1


def test_smtp_urls_are_read_with_credentials_and_tls():
    plain = mail.SmtpTransport("smtp://user%40x:p%2Fw@mail.example.org")
    assert (plain.host, plain.port, plain.tls, plain.username, plain.password) == (
        "mail.example.org", 587, False, "user@x", "p/w")
    assert plain.starttls == "require"  # another host: never in clear unless the operator says so
    tls = mail.SmtpTransport("smtps://mail.example.org")
    assert (tls.port, tls.tls) == (465, True)
    assert mail.SmtpTransport("smtp://h:2525?starttls=auto").starttls == "auto"
    assert mail.SmtpTransport("smtp://h:2525?starttls=off").starttls == "off"
    for loopback in ("127.0.0.1", "127.0.0.53", "[::1]", "localhost"):  # this machine's own relay
        assert mail.SmtpTransport(f"smtp://{loopback}:25").starttls == "auto"
    for bad in ("http://mail.example.org", "smtp://", "mail.example.org", "smtp://h?starttls=maybe"):
        with pytest.raises(ValueError, match="PETITION_SMTP_URL"):
            mail.SmtpTransport(bad)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_credentials_from_the_url_are_used_to_log_in(app, client, own_server):
    """A server that insists on AUTH: the user and password in PETITION_SMTP_URL get the mail through."""
    from aiosmtpd.smtp import AuthResult

    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=seen[-1] == ("campaign", "s3cret/pw"))

    inbox = Inbox()
    url = own_server(inbox, authenticator=authenticator, auth_required=True, auth_require_tls=False)
    port = url.rsplit(":", 1)[1]
    submit(client)
    with app.app_context():
        intake.decide()
        wrong = mail.SmtpTransport(f"smtp://campaign:wrong@127.0.0.1:{port}", timeout=2)
        with pytest.raises(mail.Unavailable):  # our setup, not the message: kept, no try charged
            outbox.deliver_due(wrong)
        item = db.session.scalars(select(OutboxMessage)).one()
        assert item.sent_at is None and item.failed_at is None and item.attempts == 0 and item.last_error
        db.session.commit()
        right = mail.SmtpTransport(f"smtp://campaign:s3cret%2Fpw@127.0.0.1:{port}", timeout=2)
        assert outbox.deliver_due(right) == (1, 0)
    assert len(inbox.wait_for(1)) == 1
    assert seen[0] == ("campaign", "wrong") and seen[-1] == ("campaign", "s3cret/pw")


def test_starttls_required_but_not_offered_keeps_the_message(app, client, smtp_server):
    """A real server that offers no STARTTLS (as one whose offer an attacker strips): the password and the
    message are not sent in clear."""
    submit(client)
    host_port = smtp_server.url.split("://", 1)[1]
    app.config["SMTP_URL"] = f"smtp://campaign:s3cret@{host_port}?starttls=require"
    with pytest.raises(mail.Unavailable):
        run_sender(app)
    assert smtp_server.inbox.messages == []
    [item] = outbox_rows(app)
    assert "STARTTLS" in item.last_error and item.failed_at is None  # the operator can mend this
    assert item.attempts == 0


def test_a_backlog_larger_than_one_batch_is_sent_whole(app, tmp_path):
    backlog = outbox.BATCH * 2 + 7
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin"))
        for number in range(backlog):
            submission = Submission(petition_id=petition.id, name="N", email=f"n{number}@example.org",
                                    email_canonical=f"n{number}@example.org", mailbox=f"n{number}@example.org",
                                    country="KZ", decided_at=utcnow(), mailed_at=utcnow())
            db.session.add(submission)
            db.session.flush()
            db.session.add(OutboxMessage(submission_id=submission.id, kind=mail.CONFIRM))
        db.session.commit()
        transport = mail.FileTransport(tmp_path / "eml")
        assert sender.run_once(transport) == (backlog, 0)
    assert len(list((tmp_path / "eml").glob("*.eml"))) == backlog


class Watching:
    """A transport that looks, while each message goes out, whether the sender has begun a write."""

    def __init__(self, app) -> None:
        self.app, self.sent, self.writes_open = app, [], []

    def send(self, message) -> None:
        self.sent.append(message)
        self.writes_open.append(_write_begun(self.app))


def _write_begun(app) -> bool:
    """From another connection: does anyone hold a write on the database (SQLite's lock, PostgreSQL's
    row-exclusive lock on the outbox)?"""
    import sqlite3

    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            probe = sqlite3.connect(engine.url.database, timeout=0.05, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
                return False
            except sqlite3.OperationalError:
                return True
            finally:
                probe.close()
        with engine.connect() as connection:
            return bool(connection.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE relation = 'outbox'::regclass AND mode = 'RowExclusiveLock'"
            ).scalar())


def test_no_write_is_held_while_messages_go_out(app, client):
    """A write begun before the messages go out would hold SQLite's one write lock, and every signer's post
    with it, for as long as the mail server takes to answer."""
    for number in range(3):
        assert submit(client, email=f"writer{number}@example.org").status_code == 303
    watching = Watching(app)
    assert run_sender(app, watching) == (3, 0)
    assert watching.writes_open == [False, False, False]
    assert _write_begun(app) is False


def test_a_flood_of_submissions_does_not_hold_back_the_first_emails(app, client):
    """The sender decides a batch and delivers a batch in turns: the first signers of a flood get their links
    while the rest are still being decided."""
    flood = intake.BATCH + 30
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin"))
        db.session.add_all(Submission(petition_id=petition.id, name="N", email=f"f{n}@example.org",
                                      email_canonical=f"f{n}@example.org", mailbox=f"f{n}@example.org",
                                      country="KZ") for n in range(flood))
        db.session.commit()

    undecided_at_first_send: list[int] = []

    class Counting:
        def send(self, message) -> None:
            if not undecided_at_first_send:
                with app.app_context():
                    undecided_at_first_send.append(db.session.scalar(
                        select(db.func.count()).select_from(Submission).where(Submission.decided_at.is_(None))))

    assert run_sender(app, Counting()) == (flood, 0)
    assert undecided_at_first_send[0] == flood - intake.BATCH  # the first message left before the rest were decided


@pytest.mark.slow
def test_two_senders_at_once_share_the_outbox_and_send_each_message_once(app, smtp_server):
    """Each sender claims its own rows (SKIP LOCKED on PostgreSQL, the writers' queue on SQLite) and records
    every message as it goes: neither sends a row the other has taken."""
    app.config["SMTP_URL"] = smtp_server.url
    rows = 40
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin"))
        for number in range(rows):
            address = f"shared{number}@example.org"
            submission = Submission(petition_id=petition.id, name="N", email=address, email_canonical=address,
                                    mailbox=address, country="KZ", decided_at=utcnow(), mailed_at=utcnow())
            db.session.add(submission)
            db.session.flush()
            db.session.add(OutboxMessage(submission_id=submission.id, kind=mail.CONFIRM))
        db.session.commit()
    counts: list[int] = []

    def work() -> None:
        with app.app_context():
            mine = 0
            while True:
                sent, failed = outbox.deliver_due(limit=5)
                assert failed == 0
                if sent == 0:
                    break
                mine += sent
            counts.append(mine)
            db.session.remove()

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert sum(counts) == rows and len(counts) == 2
    received = smtp_server.inbox.wait_for(rows)
    assert len(received) == rows
    assert len({(m["Message-ID"], recipient(m)) for m in received}) == rows
    assert all(item.sent_at is not None and item.attempts == 1 for item in outbox_rows(app))


def prose_lines_broken_mid_sentence(text: str) -> list[str]:
    """Lines of running text that end where no sentence, clause or label ends: a hard break a phone shows."""
    broken = []
    for line in text.splitlines():
        if not line or line.startswith(("  ", "http")) or line.rstrip().endswith((".", ":", ",", "!", "?")):
            continue
        if line.strip() not in ("Campaign Kazakhstan",):
            broken.append(line)
    return broken


def test_the_plain_text_emails_break_lines_only_between_paragraphs(app, client, mailbox):
    """Mail programs wrap the text to the screen; a line broken mid-sentence stays broken on a phone."""
    sign_and_confirm(app, client, mailbox, email="lines@example.org")  # confirm, then the receipt
    assert submit(client, email="lines@example.org").status_code == 303  # a repeat: already signed
    run_sender(app, mailbox)
    messages = mailbox.to("lines@example.org")
    assert len(messages) == 3
    for message in messages:
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert prose_lines_broken_mid_sentence(text) == [], message["Subject"]
