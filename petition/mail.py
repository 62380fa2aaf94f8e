"""E-mail: the two transports and the messages themselves (``outbox`` delivers them).

Each message carries a Message-ID of its outbox row's, the same on every try, and a failure is told apart as
the server's outage (``Unavailable``, no message at fault) or a refusal of one message.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from flask import Flask, current_app, render_template, url_for

from . import files, tokens
from .paths import sign_page
from .countries import NAMES as COUNTRY_NAMES
from .models import OutboxMessage, Signature, utcnow

log = logging.getLogger(__name__)

CONFIRM = "confirm"  # a submission's link, for an address that has not signed
ALREADY_SIGNED = "already_signed"  # a submission's link, for an address that has: confirming replaces
COUNTED = "counted"  # a signature's receipt, with its 'manage' link
SUBJECTS = {
    CONFIRM: "Please confirm your signature: {title}",
    ALREADY_SIGNED: "You have already signed: {title}",
    COUNTED: "Your signature is confirmed: {title}",
}
class Transport(Protocol):
    def send(self, message: EmailMessage) -> None: ...


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


STARTTLS_POLICIES = ("require", "auto", "off")
SMTP_URL_EXAMPLES = "smtp://user:password@mail.example.org:587 or smtps://user:password@mail.example.org:465"


@dataclass(frozen=True)
class SmtpUrl:
    tls: bool
    host: str
    port: int
    username: str | None
    password: str | None
    starttls: str


def parse_smtp_url(url: str) -> SmtpUrl:
    """Read ``PETITION_SMTP_URL``, or raise ValueError saying what is wrong with it (never quoting the URL,
    which may hold a password)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is no number or out of range, a broken [IPv6] address
        raise ValueError(f"its server and port cannot be read; for example {SMTP_URL_EXAMPLES}") from None
    if parts.scheme not in ("smtp", "smtps"):
        found = f"not {parts.scheme}://" if parts.scheme else "it has no scheme"
        raise ValueError(f"it must start with smtp:// or smtps:// ({found}); for example {SMTP_URL_EXAMPLES}")
    if not parts.hostname:
        raise ValueError(f"it names no mail server; for example {SMTP_URL_EXAMPLES}")
    if port == 0:
        raise ValueError(f"its port must be a number from 1 to 65535; for example {SMTP_URL_EXAMPLES}")
    unknown = sorted(set(parse_qs(parts.query, keep_blank_values=True)) - {"starttls"})
    if unknown:
        raise ValueError(f"it has an unknown parameter {unknown[0]!r} (the only one is starttls); for example "
                         "smtp://127.0.0.1:1025?starttls=off")
    tls = parts.scheme == "smtps"
    host = parts.hostname
    default = "auto" if _loopback(host) else "require"
    starttls = parse_qs(parts.query).get("starttls", [default])[0]
    if starttls not in STARTTLS_POLICIES:
        raise ValueError(f"starttls must be one of {', '.join(STARTTLS_POLICIES)}, not {starttls!r}; for example "
                         "smtp://127.0.0.1:1025?starttls=off")
    return SmtpUrl(tls=tls, host=host, port=port or (465 if tls else 587),
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None, starttls=starttls)


class SmtpTransport:
    """``smtp://user:pass@host:port`` (STARTTLS) or ``smtps://`` (TLS at once).

    To any host but this machine's own, STARTTLS is required: a server that does not offer it (or an attacker
    who strips it) gets neither the password nor the messages. ``?starttls=auto`` takes it only when offered,
    ``?starttls=off`` never; both are the operator's explicit choice. On loopback ``auto`` is the default."""

    POLICIES = STARTTLS_POLICIES

    def __init__(self, url: str, timeout: float = 30) -> None:
        try:
            parsed = parse_smtp_url(url)
        except ValueError as error:
            raise ValueError(f"PETITION_SMTP_URL: {error}") from None
        self.tls = parsed.tls
        self.host = parsed.host
        self.port = parsed.port
        self.username = parsed.username
        self.password = parsed.password
        self.starttls = parsed.starttls
        self.timeout = timeout

    def send(self, message: EmailMessage) -> None:
        client = self._connect()
        try:
            client.send_message(message)
        finally:
            # Taken or refused by now: a goodbye that fails changes neither, and must not make a sent message
            # look unsent.
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()

    def _connect(self) -> smtplib.SMTP:
        """Connect, secure the connection and log in. What fails here would fail for every message (the
        server is away, or our own setup is wrong): ``Unavailable``, and no message is charged a try."""
        context = ssl.create_default_context()
        client: smtplib.SMTP | None = None
        try:
            if self.tls:
                client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
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
            return client
        except Exception as error:
            if client is not None:
                client.close()
            raise Unavailable(error) from None


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
    message["Message-ID"] = message_id(item, sender_domain)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Petition-Outbox"] = str(item.id)
    message.set_content(render_template(f"mail/{item.kind}.txt", **context))
    message.add_alternative(render_template(f"mail/{item.kind}.html", **context), subtype="html")
    return message, links


def message_id(item: OutboxMessage, domain: str) -> str:
    """The same on every try of one row, so that a receiver recognises a repeat: the row's id and when it was
    queued, nothing of the signer's and no link."""
    return f"<outbox.{item.id}.{item.created_at:%Y%m%dT%H%M%S.%f}@{domain}>"


def _external(endpoint: str, **values: str) -> str:
    """An absolute link on the public site, whatever host the sender runs on."""
    return current_app.config["BASE_URL"] + url_for(endpoint, **values)


def permanent(error: Exception) -> bool:
    """The server will never take this message: it refuses every recipient for good (5xx), or the address
    needs SMTPUTF8, which it does not offer. (A failure of our own setup, a password or a server down, is no
    message's: ``Unavailable``.)"""
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return True
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return False


class Unavailable(Exception):
    """The mail server cannot be reached, dropped the connection, is closing (421), or will take nothing from
    us (a login refused, STARTTLS required and not offered): no message is at fault, so none is charged a
    try; the sender waits and tries again, for as long as it takes, and says why in one log line."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"the mail server is unavailable ({type(cause).__name__})")
        self.cause = cause


def unreachable(error: Exception) -> bool:
    """While sending one message: an outage of the mail server (or of the outbox folder), not a refusal of
    this message."""
    if isinstance(error, (Unavailable, smtplib.SMTPServerDisconnected)):
        return True
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code == 421  # "service not available, closing transmission channel"
    if isinstance(error, smtplib.SMTPException):  # a subclass of OSError: refusals, SMTPUTF8
        return False
    return isinstance(error, OSError)  # refused, reset, timed out; a full disk for the .eml files


