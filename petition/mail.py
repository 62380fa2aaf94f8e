"""E-mail: the outbox sender, the two transports, and the messages themselves.

Mail never leaves inside a request. The signing transaction writes an outbox row; the sender (``petition
send-mail``, or the thread that ``petition serve`` starts) renders and delivers due rows, retrying with
back-off, so a slow or broken SMTP server delays e-mails but never loses a signature or an e-mail.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import smtplib
import ssl
import threading
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from flask import Flask, current_app, render_template, url_for
from sqlalchemy import func, select

from . import connections, files, tokens
from .paths import sign_page
from .countries import NAMES as COUNTRY_NAMES
from .extensions import db
from .models import OutboxMessage, Signature, Submission, utcnow

log = logging.getLogger(__name__)

CONFIRM = "confirm"  # a submission's link, for an address that has not signed
ALREADY_SIGNED = "already_signed"  # a submission's link, for an address that has: confirming replaces
COUNTED = "counted"  # a signature's receipt, with its 'manage' link
SUBJECTS = {
    CONFIRM: "Please confirm your signature: {title}",
    ALREADY_SIGNED: "You have already signed: {title}",
    COUNTED: "Your signature is confirmed: {title}",
}
BATCH = 50
MAX_BACKOFF = timedelta(hours=1)
# A message still not delivered after this many tries (some two hours of back-off) is given up and shown to
# organisers; so is one the server refuses for good at once.
MAX_ATTEMPTS = 8

_wake = threading.Event()


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None: ...


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SmtpTransport:
    """``smtp://user:pass@host:port`` (STARTTLS) or ``smtps://`` (TLS at once).

    To any host but this machine's own, STARTTLS is required: a server that does not offer it (or an attacker
    who strips it) gets neither the password nor the messages. ``?starttls=auto`` takes it only when offered,
    ``?starttls=off`` never; both are the operator's explicit choice. On loopback ``auto`` is the default."""

    POLICIES = ("require", "auto", "off")

    def __init__(self, url: str, timeout: float = 30) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("PETITION_SMTP_URL must look like smtp://user:password@host:port or smtps://…")
        self.tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.tls else 587)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        default = "auto" if _loopback(self.host) else "require"
        self.starttls = parse_qs(parts.query).get("starttls", [default])[0]
        if self.starttls not in self.POLICIES:
            raise ValueError(f"PETITION_SMTP_URL: starttls must be one of {', '.join(self.POLICIES)}")
        self.timeout = timeout

    def send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        if self.tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            client.ehlo()
            if not self.tls and self.starttls != "off":
                if client.has_extn("starttls"):
                    client.starttls(context=context)
                    client.ehlo()
                elif self.starttls == "require":
                    raise smtplib.SMTPException("the server does not offer STARTTLS, which is required: "
                                                "nothing was sent (see PETITION_SMTP_URL)")
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(message)


class FileTransport:
    """The embedded default: each message becomes an ``.eml`` file a local user can open (the service's
    user only: folder 0700, files 0600).

    A file is named by when it was written and by its outbox row's id, so that ``erasure.compact`` can remove
    the files whose row is gone with what it was about."""

    STAMP = "%Y%m%dT%H%M%S%f"
    NAME = re.compile(r"\.?(\d{8}T\d{12})-(\d+)\.eml(?:\.partial)?")  # a partial one: left by a crash

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def send(self, message: EmailMessage) -> None:
        files.private_folder(self.folder)
        stamp = utcnow().strftime(self.STAMP)
        path = self.folder / f"{stamp}-{message['X-Petition-Outbox']}.eml"
        # Written under another name and then moved into place: a reader never finds half a message.
        partial = path.with_name(f".{path.name}.partial")
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, files.FILE), "wb") as handle:
            # As an SMTPUTF8 server would get it: an address may have a local part that is not ASCII.
            handle.write(message.as_bytes(policy=message.policy.clone(utf8=True)))
        os.replace(partial, path)
        log.info("e-mail written to %s", path)

    @classmethod
    def written(cls, folder: Path | str) -> list[tuple[Path, int, datetime]]:
        """The message files in ``folder``: each one's path, outbox row id and time of writing (UTC)."""
        found = []
        for path in Path(folder).iterdir():
            match = cls.NAME.fullmatch(path.name)
            if match:
                found.append((path, int(match[2]), datetime.strptime(match[1], cls.STAMP)))
        return found


def transport_for(app: Flask) -> Transport:
    url = app.config.get("SMTP_URL")
    return SmtpTransport(url) if url else FileTransport(app.config["OUTBOX_DIR"])


def compose(item: OutboxMessage) -> tuple[EmailMessage, dict[str, str]]:
    """Render one outbox row into a multipart text + HTML message; also return its links.

    A submission's e-mail shows the answers its link confirms, exactly: the mailbox's owner sees what was
    typed with their address before anything is stored under it."""
    config = current_app.config
    submission, signature = item.submission, item.signature
    if submission is not None and signature is None:  # a repeat: the signature already stored, if any
        signature = Signature.of_address(submission.petition_id, submission.email_canonical)
    petition = (submission or signature).petition  # type: ignore[union-attr]
    links = {"petition": config["BASE_URL"] + sign_page(petition.slug)}
    if submission is not None:
        links["confirm"] = _external("visitors.confirm", slug=petition.slug,
                                     token=tokens.make(submission, tokens.CONFIRM))
    if signature is not None:
        links["manage"] = _external("visitors.manage", slug=petition.slug,
                                    token=tokens.make(signature, tokens.MANAGE))
    answers = submission or signature
    context = {"answers": answers, "signature": signature, "petition": petition, "links": links,
               "kind": item.kind, "confirm_days": config["CONFIRM_DAYS"],
               "country_name": COUNTRY_NAMES.get(answers.country, answers.country)}  # type: ignore[union-attr]
    message = EmailMessage()
    message["Subject"] = SUBJECTS[item.kind].format(title=petition.title)
    message["From"] = config["MAIL_FROM"]
    # The address alone: no name, anyone may have typed it. Plain text, not a headerregistry Address, which
    # refuses a local part that is not ASCII; smtplib sends such an address with SMTPUTF8, or refuses it.
    message["To"] = answers.email  # type: ignore[union-attr]
    message["Date"] = formatdate(localtime=False, usegmt=True)
    sender_domain = parseaddr(config["MAIL_FROM"])[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=sender_domain)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Petition-Outbox"] = str(item.id)
    message.set_content(render_template(f"mail/{item.kind}.txt", **context))
    message.add_alternative(render_template(f"mail/{item.kind}.html", **context), subtype="html")
    return message, links


def _external(endpoint: str, **values: str) -> str:
    """An absolute link on the public site, whatever host the sender runs on."""
    return current_app.config["BASE_URL"] + url_for(endpoint, **values)


def permanent(error: Exception) -> bool:
    """The server will never take this message: it refuses every recipient for good (5xx), or the address
    needs SMTPUTF8, which it does not offer. A failure of our own setup (a password, a server down) is
    worth retrying after the operator has mended it."""
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return True
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return False


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … up to an hour between tries."""
    return min(timedelta(seconds=30 * 2 ** min(max(attempts - 1, 0), 7)), MAX_BACKOFF)


def deliver_due(transport: Transport | None = None, limit: int = BATCH) -> tuple[int, int]:
    """Send the outbox rows that are due; return (sent, failed). Call inside an app context."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    transport = transport or transport_for(app)
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None),
               OutboxMessage.next_attempt_at <= utcnow())
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # several senders never take the same row (PostgreSQL)
    )
    sent = failed = 0
    items = db.session.scalars(query).all()
    # Nothing is written until the batch is done: a write begun while the messages go out would hold
    # SQLite's one write lock, and signers' posts with it, for as long as the mail server takes.
    with db.session.no_autoflush:
        for item in items:
            _deliver(app, transport, item)
            sent, failed = (sent + 1, failed) if item.sent_at else (sent, failed + 1)
    with connections.writer_turn(db.engine):
        db.session.commit()
    return sent, failed


def _deliver(app: Flask, transport: Transport, item: OutboxMessage) -> None:
    """Send one message; record on ``item`` that it went, or why not and when to try again."""
    try:
        with app.test_request_context(base_url=app.config["BASE_URL"]):
            message, _ = compose(item)
        transport.send(message)
    except Exception as error:  # any failure: keep the row, retry later, up to a point
        item.attempts += 1
        item.next_attempt_at = utcnow() + backoff(item.attempts)
        item.last_error = f"{type(error).__name__}: {error}"[:500]
        if item.attempts >= MAX_ATTEMPTS or permanent(error):
            item.failed_at = utcnow()
        # The error text can name the recipient; it stays in the database, the log gets its type only.
        log.warning("e-mail %s not sent (attempt %s%s): %s", item.id, item.attempts,
                    ", given up" if item.failed_at else "", type(error).__name__)
    else:
        item.sent_at = utcnow()
        item.attempts += 1


def given_up(petition_id: int, limit: int = 50) -> list[OutboxMessage]:
    """For organisers: the latest e-mails about a petition that the sender gave up on."""
    about = func.coalesce(Submission.petition_id, Signature.petition_id)
    return list(db.session.scalars(
        select(OutboxMessage).outerjoin(OutboxMessage.submission).outerjoin(OutboxMessage.signature)
        .where(OutboxMessage.failed_at.is_not(None), about == petition_id)
        .order_by(OutboxMessage.failed_at.desc()).limit(limit)))


def wake_sender() -> None:
    """Tell a background sender in this process that there is new mail."""
    _wake.set()


def wait_for_work(seconds: float) -> None:
    """Sleep until ``wake_sender`` is called in this process, or for ``seconds``."""
    _wake.wait(seconds)
    _wake.clear()
