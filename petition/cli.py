"""The ``petition`` command: Flask's CLI group plus the service's own commands.

``petition db upgrade`` (Flask-Migrate) migrates, ``petition publish`` checks the declarations, builds the site
and puts it in place, ``petition sync`` loads the declarations alone,
``petition send-mail`` empties the outbox, ``petition serve`` does all three and serves.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, NoAppException, ScriptInfo, with_appcontext

from sqlalchemy.exc import SQLAlchemyError

from . import accounts, catalogue, embedded, exports, logs, publishing, sender
from .catalogue import petition_or_404
from .declarations import DeclarationError
from .extensions import init_migrations


# In the context's meta: whether this command may make a new instance (``db upgrade`` and ``serve`` only).
MAKES_INSTANCE = "petition.makes-instance"


def register(app: Flask) -> None:
    for command in _commands():
        app.cli.add_command(command)


class _Migrations(click.Group):
    """``petition db``: Flask-Migrate's command group, imported and set up only when it is invoked."""

    def __init__(self) -> None:
        super().__init__("db", help="Migrate the database (Flask-Migrate): upgrade, downgrade, current, ...")

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        if parent is not None:
            parent.meta[MAKES_INSTANCE] = args[:1] == ["upgrade"]
        info = (parent or click.get_current_context()).ensure_object(ScriptInfo)
        init_migrations(info.load_app())
        from flask_migrate.cli import db

        return db.make_context(info_name, args, parent=parent, **extra)  # the context runs that group


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


@click.command("publish")
@click.option("--config-file", default="mkdocs.yml", show_default=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The site's MkDocs configuration.")
@with_appcontext
def publish(config_file: Path) -> None:
    """Check the petition declarations, build the site into a new folder, load the petitions into the
    database and only then put the new site in place. On any failure the served site stays as it was.
    Running services show the new site and its frame at once: nothing to restart."""
    config = current_app.config
    try:
        declarations = publishing.check(config["PETITIONS_DIR"])
    except DeclarationError as error:
        raise click.ClickException(f"nothing published: {error}") from None
    click.echo(f"Declarations: {len(declarations)} petition(s), all valid")
    site = Path(config["SITE_DIR"])
    with publishing.one_at_a_time(site):
        try:
            built = publishing.build(config_file.absolute(), site, config["BASE_URL"])
        except publishing.PublishError as error:
            raise click.ClickException(f"nothing published: the site did not build.\n{error}") from None
        try:
            _sync()
        except (SQLAlchemyError, click.ClickException) as error:
            publishing.discard(built)
            reason = (error.format_message() if isinstance(error, click.ClickException) else
                      f"{type(error).__name__}: is the database reachable, and migrated by `petition db upgrade`?")
            raise click.ClickException(f"nothing published: the petitions could not be loaded ({reason})") from None
        publishing.swap(site, built)
    click.echo(f"Published: {site} now serves the build of {built.name}")


@click.command("send-mail")
@click.option("--loop", is_flag=True, help="Keep running, checking the outbox every --interval seconds.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between checks with --loop.")
@with_appcontext
def send_mail(loop: bool, interval: float) -> None:
    """Decide new submissions and deliver the e-mails waiting in the outbox, retrying failed ones with
    back-off. With --loop, outages of the database or the mail server are waited out; SIGTERM stops it
    between two messages."""
    logs.configure()
    if loop:
        sender.run_until_signalled(current_app.app_context().app, interval)  # the app, for a thread of its own
        return
    try:
        sent, failed = sender.run_once()
    except Exception as error:
        raise click.ClickException(f"e-mails not sent: {sender.describe(error)}") from None
    click.echo(f"sent {sent}, failed {failed}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64))
@with_appcontext
def serve(host: str, port: int, threads: int) -> None:
    """The embedded run: migrate, load the petitions, send mail in the background, serve."""
    import waitress
    from flask_migrate import upgrade

    logs.configure()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not os.environ.get("PETITION_BASE_URL"):  # links in e-mails must reach this server
        app.config["BASE_URL"] = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    init_migrations(app)
    upgrade()
    _sync()
    sender.start(app)
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
    # waitress kept: a slow client costs it a socket, not a thread, so its own settings (ten times the
    # connections, a short idle timeout, header and body limits) keep it up for everyone. A bound per client
    # address is no setting of it (nor of gunicorn's), and behind a proxy all clients share one address:
    # facing the internet, nginx stands in front (it drops trickling clients and passes on whole requests).
    waitress.serve(served, host=host, port=port, threads=threads, ident="petition",
                   **embedded.server_settings(app.config["MAX_CONTENT_LENGTH"]))


@click.group()
def organiser() -> None:
    """Organiser accounts: add, reset-password, disable, list."""


def _password(generate: bool) -> str:
    """A generated password is printed by the caller only once the account change has succeeded: printed
    before a refusal, it would look like the password in force."""
    if generate:
        return accounts.generate_password()
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _account_command(action) -> None:
    try:
        action()
    except accounts.AccountError as error:
        raise click.ClickException(str(error)) from None


@organiser.command("add")
@click.argument("email")
@click.option("--generate", is_flag=True, help="Generate a password and print it instead of asking for one.")
@with_appcontext
def organiser_add(email: str, generate: bool) -> None:
    """Create an organiser account."""
    password = _password(generate)
    _account_command(lambda: accounts.add(email, password))
    click.echo(f"Organiser {accounts.normalise(email)} added.")
    if generate:
        click.echo(f"Password: {password}")


@organiser.command("reset-password")
@click.argument("email")
@click.option("--generate", is_flag=True, help="Generate a password and print it instead of asking for one.")
@with_appcontext
def organiser_reset(email: str, generate: bool) -> None:
    """Set a new password (and enable the account again)."""
    password = _password(generate)
    _account_command(lambda: accounts.reset_password(email, password))
    click.echo(f"Password of {accounts.normalise(email)} reset.")
    if generate:
        click.echo(f"Password: {password}")


@organiser.command("disable")
@click.argument("email")
@with_appcontext
def organiser_disable(email: str) -> None:
    """Stop an organiser from logging in (their open sessions end at once)."""
    _account_command(lambda: accounts.disable(email))
    click.echo(f"Organiser {accounts.normalise(email)} disabled.")


@organiser.command("list")
@with_appcontext
def organiser_list() -> None:
    """Every organiser, with state and last login."""
    from sqlalchemy import select

    from .extensions import db
    from .models import Organiser

    for account in db.session.scalars(select(Organiser).order_by(Organiser.email)):
        last = account.last_login_at.strftime("%Y-%m-%d %H:%M") if account.last_login_at else "never"
        click.echo(f"{account.email}\t{'active' if account.active else 'disabled'}\tlast login {last}")


@click.group()
def export() -> None:
    """Signer lists and counts to files, for scripts and cron; every export is audited."""


def _actor() -> str:
    import getpass

    return f"command line ({getpass.getuser()})"


def _petition(slug: str):
    from werkzeug.exceptions import NotFound

    try:
        return petition_or_404(slug)
    except NotFound:
        raise click.ClickException(f"no petition '{slug}'") from None


@export.command("signatures")
@click.argument("slug")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="csv", show_default=True)
@click.option("--status", type=click.Choice(["confirmed", "all"]), default="confirmed", show_default=True)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Signed on or after (YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Signed on or before (YYYY-MM-DD).")
@click.option("--country", help="ISO 3166 alpha-2 code, e.g. KZ.")
@click.option("--updates-only", is_flag=True, help="Only signers who asked to be kept informed.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True)
@with_appcontext
def export_signatures(slug, fmt, status, since, until, country, updates_only, output) -> None:
    """Write a petition's signer list to a file."""
    petition = _petition(slug)
    filters = exports.Filters(status=status, since=since.date() if since else None,
                              until=until.date() if until else None,
                              country=country.upper() if country else None, updates_only=updates_only)
    log_id = exports.begin(_actor(), petition, "signatures", fmt, filters.as_dict())
    chunks = (exports.csv_chunks if fmt == "csv" else exports.xlsx_chunks)(petition, filters, log_id)
    with open(output, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
    from .extensions import db
    from .models import ExportLog

    click.echo(f"{db.session.get(ExportLog, log_id).rows} signatures written to {output}")


@export.command("counts")
@click.argument("slug")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Default: standard output.")
@with_appcontext
def export_counts(slug, fmt, output) -> None:
    """Counts per day, country and status (pending and held included)."""
    import json

    petition = _petition(slug)
    rows = exports.counts_by_day_country_status(petition)
    exports.finish(exports.begin(_actor(), petition, "counts", fmt, {}), len(rows))
    text = exports.counts_csv(rows) if fmt == "csv" else json.dumps(exports.counts_json(petition, rows), indent=2)
    if output:
        with open(output, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    else:
        click.echo(text, nl=False)


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Only say how many signatures would be anonymised.")
@with_appcontext
def purge(dry_run: bool) -> None:
    """Anonymise signatures PETITION_RETENTION_DAYS after their petition closed (counts stay exact), delete
    submissions whose confirmation link has expired, erase address hashes after PETITION_IP_HASH_DAYS and
    replace the hash key as often; then compact the database's files so that nothing erased stays in them."""
    from . import erasure, hashing
    from . import purge as purging

    logs.configure()
    config = current_app.config
    would = "would be " if dry_run else ""
    expired = purging.expired_submissions(config["CONFIRM_DAYS"], dry_run=dry_run)
    click.echo(f"{expired} unconfirmed submissions with expired links {would}deleted")
    days = config["RETENTION_DAYS"]
    report = purging.purge(days, dry_run=dry_run)
    verb = "would be anonymised" if dry_run else "anonymised"
    for slug, rows in report.items():
        click.echo(f"{slug}: {rows} signatures {verb}")
    if not report:
        click.echo(f"No petition closed more than {days} days ago.")
    hash_days = config["IP_HASH_DAYS"]
    hashes = purging.ip_hashes(hash_days, dry_run=dry_run)
    click.echo(f"{hashes} address hashes older than {hash_days} days {would}erased")
    if dry_run:
        return
    if config.get("HASH_KEY"):
        click.echo(f"Hash key set by PETITION_HASH_KEY: replace it yourself every {hash_days} days")
    elif hashing.rotate(hash_days):
        click.echo("Hash key replaced")
    else:
        click.echo(f"Hash key younger than {hash_days} days: kept")
    if erasure.compact(vacuum=True):
        click.echo("Database files compacted: nothing erased is left in them")
    else:
        click.echo("Database busy: the mail sender compacts its files in its next round")


@click.command("backup")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def backup(target: Path) -> None:
    """Write a consistent online copy of the SQLite database to TARGET."""
    from . import backup as backups

    try:
        signatures = backups.backup(target)
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Backed up {signatures} signatures to {target}")


@click.command("restore")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def restore(source: Path, yes: bool) -> None:
    """Replace the SQLite database with the backup SOURCE (checked first)."""
    from . import backup as backups

    try:
        signatures = backups.check(source)
        if not yes:
            click.confirm(f"Replace the live database with {source} ({signatures} signatures)?", abort=True)
        backups.restore(source)
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Restored {signatures} signatures from {source}")


def _create_app() -> Flask:
    from . import create_app
    from .settings import ConfigError

    _refuse_outside_a_project()
    try:
        return create_app()
    except ConfigError as error:  # a clear line for the operator, not a traceback
        raise click.ClickException(str(error)) from None


def _refuse_outside_a_project() -> None:
    """Anywhere else the default ``./instance`` would be a new one: an empty database, a new secret key. Only
    ``db upgrade`` and ``serve`` may make a new instance, and only where they are told to."""
    context = click.get_current_context(silent=True)
    makes = context is not None and (context.meta.get(MAKES_INSTANCE) or context.command_path.endswith(" serve"))
    configured = os.environ.get("PETITION_INSTANCE_PATH")
    if configured:
        if makes or Path(configured).is_dir():
            return
        raise NoAppException(
            f"PETITION_INSTANCE_PATH={configured}: there is no such folder. Check the path; only `petition db "
            "upgrade` and `petition serve` make a new instance. Nothing was created.")
    if Path("instance").is_dir() or Path("mkdocs.yml").is_file():
        return
    raise NoAppException(
        f"No petition instance in {Path.cwd()}: there is no ./instance folder and this is not the project's "
        "folder (no mkdocs.yml). Run the command in the project's folder, or point it at the instance with "
        "PETITION_INSTANCE_PATH (for example PETITION_INSTANCE_PATH=/srv/campaign/instance, or set -a; "
        ". /etc/petition/petition.env; set +a). Nothing was created.")


def _commands() -> tuple[click.Command, ...]:
    return (serve, publish, sync, send_mail, organiser, export, purge, backup, restore, _Migrations())


main = FlaskGroup(create_app=_create_app, help=__doc__)
# Also on the group itself, so that they are found, and their help shown, before any app is made.
for _command in _commands():
    main.add_command(_command)
