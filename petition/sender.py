"""The background sender: decides new submissions, then delivers the outbox.

``petition send-mail`` runs it as a process of its own in production; ``petition serve`` runs it in a
thread. Deciding after the request is what keeps every sign-form POST alike (see ``intake``).

The loop outlives outages of the database and of the mail server: a round that fails is logged in one line,
and the next is tried after 1, 2, 4 … seconds, at most a minute apart, until the part is back.
"""

from __future__ import annotations

import logging
import signal
import threading

from flask import Flask
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from . import connections, erasure, intake, logs, mail, outbox
from .extensions import db

log = logging.getLogger(__name__)

RETRY_FIRST = 1.0  # seconds after the first failed round
RETRY_MAX = 60.0  # seconds between tries at most, however long the outage


def run_once(transport: mail.Transport | None = None, stop: threading.Event | None = None) -> tuple[int, int]:
    """Decide the waiting submissions and deliver what is due, a batch of each in turn, until neither has
    more: under a flood of submissions the first e-mails still go out at once. Then compact the files after
    erasures, if any are due (here, not in the erasing request: on PostgreSQL it locks the tables). Return
    (sent, failed). ``stop``, when set, ends the work between two messages."""
    total_sent = total_failed = 0
    while not (stop is not None and stop.is_set()):
        decided = intake.decide()
        sent, failed = outbox.deliver_due(transport, stop=stop)
        total_sent, total_failed = total_sent + sent, total_failed + failed
        if decided < intake.BATCH and sent + failed < outbox.BATCH:  # failed rows wait for their back-off
            break
    if erasure.due():
        erasure.compact()
    return total_sent, total_failed


def describe(error: BaseException) -> str:
    """One line about a failed round, naming the part that is away and why, in its own words' first line
    (redacted, as every log line is: a reply can quote an address), never a traceback."""
    if isinstance(error, mail.Unavailable):
        return f"the mail server is unavailable ({_why(error.cause)})"
    if isinstance(error, (OperationalError, InterfaceError)) or (
            isinstance(error, DBAPIError) and error.connection_invalidated):
        return f"the database is unavailable ({_why(error.orig or error)})"
    if isinstance(error, connections.DatabaseBusy):  # SQLite's writers' queue did not move
        return f"the database is busy ({_why(error)})"
    return f"round failed ({type(error).__name__})"


def _why(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    first = lines[0].strip()[:160] if lines else ""
    return f"{type(error).__name__}: {logs.redact(first)}" if first else type(error).__name__


def outage(error: BaseException) -> bool:
    """A part away, not a fault of ours: logged in one line, without a traceback."""
    return not describe(error).startswith("round failed")


def run(app: Flask, stop: threading.Event, interval: float = 5.0, retry_max: float = RETRY_MAX) -> None:
    """The loop: work, then sleep until woken by a new submission or until a retry may be due. After a failed
    round, wait the growing delay instead (a new submission does not cut it short: during an outage of the
    mail server every signer would)."""
    delay = 0.0
    while not stop.is_set():
        with app.app_context():
            try:
                run_once(stop=stop)
            except Exception as error:
                # A traceback for what is not an outage, once: a bug shows itself without flooding the log.
                first = delay == 0.0
                delay = min(max(delay * 2, RETRY_FIRST), retry_max)
                log.warning("mail sender: %s; trying again in %g s", describe(error), delay,
                            exc_info=first and not outage(error))
            else:
                if delay:
                    log.info("mail sender: working again")
                delay = 0.0
            finally:
                _discard_session()
        if delay:
            stop.wait(delay)
        else:
            outbox.wait_for_work(interval)


def _discard_session() -> None:
    try:
        db.session.rollback()
        db.session.remove()
    except Exception as error:  # the connection may be gone with the database; the pool replaces it
        log.debug("mail sender: session discarded with %s", type(error).__name__)


def start(app: Flask, interval: float = 5.0) -> threading.Event:
    """Start ``run`` in a daemon thread; set the returned event (and call ``outbox.wake_sender``) to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(app, stop, interval), name="mail-sender", daemon=True)
    thread.start()
    return stop


def run_until_signalled(app: Flask, interval: float = 5.0) -> None:
    """``petition send-mail --loop``: ``run`` until SIGTERM or SIGINT, which end it between two messages, so a
    message that has gone out is always recorded before the process exits. The loop runs in a thread of its
    own; this one only waits, so that the signal handler never interrupts the loop inside a lock it takes."""
    stop = threading.Event()

    def stopping(signum, frame) -> None:
        stop.set()
        outbox.wake_sender()

    previous = {number: signal.signal(number, stopping) for number in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(target=run, args=(app, stop, interval), name="mail-sender")
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
