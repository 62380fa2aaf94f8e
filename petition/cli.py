"""The ``petition`` command: Flask's CLI group plus the service's own commands.

``petition db upgrade`` (Flask-Migrate) migrates, ``petition sync`` loads the declarations,
``petition send-mail`` empties the outbox, ``petition serve`` does all three and serves.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from flask_migrate import upgrade

from . import catalogue, embedded, mail
from .declarations import DeclarationError


def register(app: Flask) -> None:
    for command in (serve, sync, send_mail):
        app.cli.add_command(command)


def _sync() -> None:
    try:
        report = catalogue.sync(current_app.config["PETITIONS_DIR"])
    except DeclarationError as error:
        raise click.ClickException(str(error)) from None
    for slug, outcome in report:
        click.echo(f"{slug}: {outcome}")


@click.command("sync")
@with_appcontext
def sync() -> None:
    """Load the petition declarations (Markdown front matter) into the database."""
    _sync()


@click.command("send-mail")
@click.option("--loop", is_flag=True, help="Keep running, checking the outbox every --interval seconds.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between checks with --loop.")
@with_appcontext
def send_mail(loop: bool, interval: float) -> None:
    """Deliver the e-mails waiting in the outbox, retrying failed ones with back-off."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    while True:
        sent, failed = mail.deliver_all()
        if not loop:
            click.echo(f"sent {sent}, failed {failed}")
            return
        time.sleep(interval)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64))
@with_appcontext
def serve(host: str, port: int, threads: int) -> None:
    """The embedded run: migrate, load the petitions, send mail in the background, serve."""
    import waitress

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not os.environ.get("PETITION_BASE_URL"):  # links in e-mails must reach this server
        app.config["BASE_URL"] = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    upgrade()
    _sync()
    mail.start_sender(app)
    site_dir = Path(app.config["SITE_DIR"])
    if (site_dir / "index.html").is_file():
        served = embedded.site_and_service(app, site_dir)
        click.echo(f"Site: {site_dir}")
    else:
        served = app
        click.echo(f"Site: not built (no {site_dir / 'index.html'}); serving the petition service alone")
    if app.config.get("SMTP_URL"):
        click.echo("E-mails: sent through PETITION_SMTP_URL")
    else:
        click.echo(f"E-mails: written to {app.config['OUTBOX_DIR']} (set PETITION_SMTP_URL to send them)")
    click.echo(f"Serving on http://{host}:{port}/ (Ctrl+C to stop)")
    waitress.serve(served, host=host, port=port, threads=threads, ident="petition")


def _create_app() -> Flask:
    from . import create_app
    from .settings import ConfigError

    try:
        return create_app()
    except ConfigError as error:  # a clear line for the operator, not a traceback
        raise click.ClickException(str(error)) from None


main = FlaskGroup(create_app=_create_app, help=__doc__)
