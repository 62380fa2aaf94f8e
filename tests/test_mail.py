"""E-mail through a real SMTP server on loopback: the whole path from signing to a counted signature."""

from __future__ import annotations

import logging
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select

from petition import mail
from petition.extensions import db
from petition.models import OutboxMessage, utcnow

from conftest import submit

LINK = re.compile(r"http://petition\.test(/petitions/[^\s\"<]+)")


def links_in(message) -> dict[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    found = {path.split("/")[3]: path for path in LINK.findall(text)}
    return found


def deliver(app) -> tuple[int, int]:
    with app.app_context():
        return mail.deliver_due()


def test_sign_email_confirm_count_through_real_smtp(app, client, smtp_server):
    inbox = smtp_server.inbox
    app.config["SMTP_URL"] = smtp_server.url
    assert submit(client, email="signer@example.org").status_code == 303
    assert client.get("/api/petitions/vadim-kuramshin").json["signature_count"] == 0

    assert deliver(app) == (1, 0)
    [message] = inbox.wait_for(1)
    assert message["To"].addresses[0].addr_spec == "signer@example.org"
    assert message["From"] == "Campaign Kazakhstan <petitions@localhost>"
    assert message["Message-ID"] and message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    assert {part.get_content_type() for part in message.iter_parts()} == {"text/plain", "text/html"}
    assert "Urgent action for Vadim Kuramshin" in message["Subject"]

    links = links_in(message)
    confirm_page = client.get(links["confirm"])
    assert confirm_page.status_code == 200
    assert "Confirm my signature" in confirm_page.get_data(as_text=True)
    # Opening the link (as a mail scanner would) changes nothing.
    assert client.get("/api/petitions/vadim-kuramshin").json["signature_count"] == 0

    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', confirm_page.get_data(as_text=True))
    done = client.post(links["confirm"], data={"csrf_token": token.group(1)})
    assert done.status_code == 303
    assert client.get(done.headers["Location"]).status_code == 200
    api = client.get("/api/petitions/vadim-kuramshin").json
    assert api["signature_count"] == 1 and api["by_country"] == {"KZ": 1}

    # Nothing is left to send, and a second delivery round sends nothing twice.
    assert deliver(app) == (0, 0)
    assert len(inbox.messages) == 1


def test_a_repeat_after_confirmation_mails_an_already_signed_notice(app, client, smtp_server):
    inbox = smtp_server.inbox
    app.config["SMTP_URL"] = smtp_server.url
    submit(client)
    deliver(app)
    links = links_in(inbox.wait_for(1)[0])
    token = re.search(r'value="([^"]+)"', client.get(links["confirm"]).get_data(as_text=True)).group(1)
    client.post(links["confirm"], data={"csrf_token": token})
    submit(client)
    deliver(app)
    notice = inbox.wait_for(2)[1]
    assert notice["Subject"].startswith("You have already signed")
    assert "manage" in links_in(notice)


def test_smtp_down_keeps_every_email_and_delivers_it_later(app, client, smtp_server):
    inbox = smtp_server.inbox
    app.config["SMTP_URL"] = smtp_server.url
    smtp_server.stop()
    for number in range(3):  # signing goes on while the mail server is down
        assert submit(client, email=f"signer{number}@example.org").status_code == 303
    assert deliver(app) == (0, 3)
    with app.app_context():
        items = db.session.scalars(select(OutboxMessage)).all()
        assert all(i.sent_at is None and i.attempts == 1 and i.next_attempt_at > utcnow() for i in items)
        assert all("ConnectionRefusedError" in i.last_error for i in items)
        # Not due yet: a retry waits for its back-off.
        assert mail.deliver_due() == (0, 0)
        for item in items:
            item.next_attempt_at = utcnow()
        db.session.commit()
    smtp_server.start()
    assert deliver(app) == (3, 0)
    received = {m["To"].addresses[0].addr_spec for m in inbox.wait_for(3)}
    assert received == {f"signer{n}@example.org" for n in range(3)}


def test_backoff_grows_and_is_capped():
    assert [mail.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert mail.backoff(50) == mail.MAX_BACKOFF


def test_without_smtp_messages_become_eml_files_and_the_link_is_logged(app, client, caplog):
    submit(client, email="local@example.org")
    with caplog.at_level(logging.INFO, logger="petition.mail"):
        assert deliver(app) == (1, 0)
    [eml] = Path(app.config["OUTBOX_DIR"]).glob("*.eml")
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["To"].addresses[0].addr_spec == "local@example.org"
    assert message["To"].addresses[0].display_name == "Вадим Курамшин"
    logged = caplog.text
    assert "http://petition.test/petitions/vadim-kuramshin/confirm/" in logged
    assert "local@example.org" not in logged  # a link, never the address


def test_the_background_sender_delivers_without_being_asked(app, client, smtp_server):
    inbox = smtp_server.inbox
    app.config["SMTP_URL"] = smtp_server.url
    stop = mail.start_sender(app, interval=0.2)
    try:
        submit(client, email="background@example.org")
        [message] = inbox.wait_for(1)
        assert message["To"].addresses[0].addr_spec == "background@example.org"
    finally:
        stop.set()
        mail.wake_sender()


def test_smtp_urls_are_read_with_credentials_and_tls():
    plain = mail.SmtpTransport("smtp://user%40x:p%2Fw@mail.example.org")
    assert (plain.host, plain.port, plain.tls, plain.username, plain.password) == (
        "mail.example.org", 587, False, "user@x", "p/w")
    assert plain.starttls == "auto"
    tls = mail.SmtpTransport("smtps://mail.example.org")
    assert (tls.port, tls.tls) == (465, True)
    assert mail.SmtpTransport("smtp://h:2525?starttls=require").starttls == "require"
    for bad in ("http://mail.example.org", "smtp://", "mail.example.org"):
        try:
            mail.SmtpTransport(bad)
        except ValueError as error:
            assert "PETITION_SMTP_URL" in str(error)
        else:
            raise AssertionError(f"{bad} accepted")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_credentials_from_the_url_are_used_to_log_in(app, client):
    """A server that insists on AUTH: the user and password in PETITION_SMTP_URL get the mail through."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from conftest import Inbox, free_port

    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=seen[-1] == ("campaign", "s3cret/pw"))

    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    try:
        submit(client)
        with app.app_context():
            wrong = mail.SmtpTransport(f"smtp://campaign:wrong@127.0.0.1:{port}", timeout=2)
            assert mail.deliver_due(wrong) == (0, 1)  # refused: kept for a later try
            item = db.session.scalars(select(OutboxMessage)).one()
            assert item.sent_at is None and item.last_error
            item.next_attempt_at = utcnow()
            db.session.commit()
            right = mail.SmtpTransport(f"smtp://campaign:s3cret%2Fpw@127.0.0.1:{port}", timeout=2)
            assert mail.deliver_due(right) == (1, 0)
        assert len(inbox.wait_for(1)) == 1
        assert seen[0] == ("campaign", "wrong") and seen[-1] == ("campaign", "s3cret/pw")
    finally:
        controller.stop()


def test_starttls_required_but_not_offered_keeps_the_message(app, client, smtp_server):
    submit(client)
    app.config["SMTP_URL"] = smtp_server.url + "?starttls=require"
    assert deliver(app) == (0, 1)
    assert smtp_server.inbox.messages == []
    with app.app_context():
        assert "STARTTLS" in db.session.scalars(select(OutboxMessage)).one().last_error


def test_a_backlog_larger_than_one_batch_is_sent_whole(app, client, tmp_path):
    with app.app_context():
        from petition.models import Petition, Signature

        petition = db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin"))
        for number in range(mail.BATCH * 2 + 7):
            signature = Signature(petition_id=petition.id, name="N", email=f"n{number}@example.org",
                                  email_canonical=f"n{number}@example.org", country="KZ")
            db.session.add(signature)
            db.session.flush()
            db.session.add(OutboxMessage(signature_id=signature.id, kind=mail.CONFIRM))
        db.session.commit()
        transport = mail.FileTransport(tmp_path / "eml")
        assert mail.deliver_all(transport) == (mail.BATCH * 2 + 7, 0)
    assert len(list((tmp_path / "eml").glob("*.eml"))) == mail.BATCH * 2 + 7
