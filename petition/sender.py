"""The background sender: decides new submissions, then delivers the outbox.

``petition send-mail`` runs it as a process of its own in production; ``petition serve`` runs it in a
thread. Deciding after the request is what keeps every sign-form POST alike (see ``intake``).
"""

from __future__ import annotations

import logging
import threading

from flask import Flask

from . import erasure, intake, mail
from .extensions import db

log = logging.getLogger(__name__)


def run_once(transport: mail.Transport | None = None) -> tuple[int, int]:
    """Decide the waiting submissions and deliver what is due, a batch of each in turn, until neither has
    more: under a flood of submissions the first e-mails still go out at once. Then compact the files after
    erasures, if any are due (here, not in the erasing request: on PostgreSQL it locks the tables). Return
    (sent, failed)."""
    total_sent = total_failed = 0
    while True:
        decided = intake.decide()
        sent, failed = mail.deliver_due(transport)
        total_sent, total_failed = total_sent + sent, total_failed + failed
        if decided < intake.BATCH and sent + failed < mail.BATCH:  # failed rows wait for their back-off
            break
    if erasure.due():
        erasure.compact()
    return total_sent, total_failed


def run(app: Flask, stop: threading.Event, interval: float = 5.0) -> None:
    """The loop: work, then sleep until woken by a new submission or until a retry may be due."""
    while not stop.is_set():
        with app.app_context():
            try:
                run_once()
            except Exception:  # the database may be briefly away; never let the loop die
                log.exception("mail sender: round failed")
                db.session.rollback()
            finally:
                db.session.remove()
        mail.wait_for_work(interval)


def start(app: Flask, interval: float = 5.0) -> threading.Event:
    """Start ``run`` in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(app, stop, interval), name="mail-sender", daemon=True)
    thread.start()
    return stop
