"""Organiser views. Every view but login requires a logged-in, active organiser. Care work that touches
signers is recorded in the audit table."""

from __future__ import annotations

import logging
import re
import secrets

from flask import (Response, abort, flash, jsonify, redirect, render_template, request, session, stream_template,
                   stream_with_context, url_for)
from flask_login import current_user, login_user, logout_user
from sqlalchemy import delete, func, select

from .. import accounts, catalogue, charts, counts, emails, erasure, exports, hashing, outbox, ratelimits, signing
from ..catalogue import petition_or_404
from ..countries import name as country_name
from ..extensions import db, login_manager
from ..models import CONFIRMED, HELD, AuditRecord, ExportLog, Organiser, Petition, Signature, Submission, utcnow
from . import bp
from .forms import ActionForm, EraseForm, EraseSubmissionsForm, ExportForm, FindForm, LoginForm

FORMATS = {"csv": "text/csv",  # Flask adds "; charset=utf-8" to text types
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
# The organiser's session key as it was at login, kept in the session beside Flask-Login's user id.
SESSION_KEY = "organiser_key"
LOG_ROWS = 20
# Login attempts per client address, whatever the account (``accounts`` also limits them per account).
LOGIN_LIMITS = "10 per minute;50 per hour"
# Where a login may lead on: an organiser page, in printable ASCII without spaces or backslashes (a
# control character would break the Location header, a backslash makes some browsers leave the site).
OWN_PAGE = re.compile(r"/organisers/[!-\[\]-~]*")

log = logging.getLogger(__name__)


@login_manager.user_loader
def load_organiser(organiser_id: str) -> Organiser | None:
    """The active organiser whose session this is, if its key is still theirs: logout, a new password and
    disabling replace the key, so every copy of an older session cookie stops working (a remember-me cookie
    alone never brings a key, so it logs nobody in)."""
    organiser = db.session.get(Organiser, int(organiser_id)) if organiser_id.isdigit() else None
    key = session.get(SESSION_KEY)
    if organiser is None or not organiser.active or not isinstance(key, str):
        return None
    return organiser if secrets.compare_digest(key.encode(), organiser.session_key.encode()) else None


@bp.before_request
def require_login():
    """Everything under /organisers/ but the login page itself needs an active organiser."""
    if request.endpoint != "organisers.login" and not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    error = None
    if request.method == "POST":
        limits, client = ratelimits.current(), hashing.client()
        passed = limits.hit_all(ratelimits.parsed(LOGIN_LIMITS), "login", client)
        if passed:
            log.warning("organisers.login answered 429: too many attempts from one address")
            error = "Too many logins have been tried from your network. Please wait a while and try again."
            return (render_template("organisers/login.html", form=form, error=error), 429,
                    {"Retry-After": str(limits.wait(passed, "login", client))})
    if form.validate_on_submit():
        try:
            organiser = accounts.authenticate(form.email.data, form.password.data)
        except accounts.TooManyFailures as paused:
            # The same answer whether an account has this address or not.
            error = "Too many failed logins with this e-mail address. Please wait a while and try again."
            return (render_template("organisers/login.html", form=form, error=error), 429,
                    {"Retry-After": str(paused.retry_after)})
        if organiser:
            # A new session, so a new CSRF token: nothing of the session from before the login carries over.
            session.clear()
            login_user(organiser)
            session[SESSION_KEY] = organiser.session_key
            target = request.args.get("next", "")
            if not OWN_PAGE.fullmatch(target):  # never an open redirect, nor a broken header
                target = url_for(".dashboard")
            return redirect(target, code=303)
        error = "The e-mail address or the password is not right."  # the same for both
    status = 401 if error else (422 if form.errors else 200)
    return render_template("organisers/login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    if ActionForm().validate_on_submit():
        accounts.end_sessions(current_user)  # on every device, and every copy of this cookie
        logout_user()
        session.pop(SESSION_KEY, None)
    return redirect(url_for(".login"), code=303)


@bp.get("/")
def dashboard():
    petitions = db.session.scalars(select(Petition).order_by(Petition.opens_on.desc())).all()
    rows = []
    for petition in petitions:
        status = counts.by_status(petition.id)
        rows.append({"petition": petition, "status": status,
                     "progress": min(100, 100 * status["total"][CONFIRMED] // petition.goal)})
    log = db.session.scalars(select(ExportLog).order_by(ExportLog.id.desc()).limit(LOG_ROWS)).all()
    audit = db.session.scalars(select(AuditRecord).order_by(AuditRecord.id.desc()).limit(LOG_ROWS)).all()
    return render_template("organisers/dashboard.html", rows=rows, log=log, audit=audit, form=ActionForm())


@bp.get("/petitions/<slug>")
def petition(slug: str):
    petition = petition_or_404(slug)
    confirmed = counts.confirmed_counts(petition.id)
    held = db.session.scalars(select(Signature).where(Signature.petition_id == petition.id,
                                                      Signature.status == HELD)
                              .order_by(Signature.id).limit(100)).all()
    log = db.session.scalars(select(ExportLog).where(ExportLog.petition_id == petition.id)
                             .order_by(ExportLog.id.desc()).limit(LOG_ROWS)).all()
    audit = db.session.scalars(select(AuditRecord).where(AuditRecord.petition_id == petition.id)
                               .order_by(AuditRecord.id.desc()).limit(LOG_ROWS)).all()
    closed = petition.closed_early_at
    chart = charts.per_day(counts.confirmed_per_day(petition.id), f"Confirmed signatures per day: {petition.title}",
                           opens_on=petition.opens_on, closes_on=petition.closes_on, today=utcnow().date(),
                           closed_on=closed.date() if closed else None)
    return render_template("organisers/petition.html", petition=petition, status=counts.by_status(petition.id),
                           by_country=sorted(confirmed.by_country.items(), key=lambda kv: -kv[1]),
                           country_name=country_name, chart=chart, held=held, log=log, audit=audit,
                           undelivered=outbox.given_up(petition.id),
                           export_form=ExportForm(request.args), form=ActionForm())


def _actor() -> str:
    return current_user.email


def _audit(action: str, petition_id: int | None = None, detail: str = "") -> None:
    """Record care work in the caller's transaction: who did what, never anything of a signer."""
    db.session.add(AuditRecord(actor=_actor(), action=action, petition_id=petition_id, detail=detail))


@bp.get("/petitions/<slug>/signatures.<fmt>")
def signatures(slug: str, fmt: str):
    if fmt not in FORMATS:
        abort(404)
    petition = petition_or_404(slug)
    form = ExportForm(request.args)
    if not form.validate():
        abort(400, description="; ".join(message for errors in form.errors.values() for message in errors))
    filters = exports.Filters(status=form.status.data or CONFIRMED, since=form.since.data, until=form.until.data,
                              country=form.country.data or None, updates_only=form.updates.data)
    log_id = exports.begin(_actor(), petition, "signatures", fmt, filters.as_dict())
    chunks = (exports.csv_chunks if fmt == "csv" else exports.xlsx_chunks)(petition, filters, log_id)
    response = Response(stream_with_context(chunks), mimetype=FORMATS[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{exports.filename(petition, "signatures", fmt)}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/petitions/<slug>/counts.<fmt>")
def organiser_counts(slug: str, fmt: str):
    if fmt not in ("csv", "json"):
        abort(404)
    petition = petition_or_404(slug)
    rows = exports.counts_by_day_country_status(petition)
    log_id = exports.begin(_actor(), petition, "counts", fmt, {})
    exports.finish(log_id, len(rows))
    if fmt == "json":
        response = jsonify(exports.counts_json(petition, rows))
    else:
        response = Response(exports.counts_csv(rows), mimetype="text/csv")
        response.headers["Content-Disposition"] = f'attachment; filename="{exports.filename(petition, "counts", fmt)}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/petitions/<slug>/<any(close, reopen):action>")
def close_or_reopen(slug: str, action: str):
    """Close a petition before its closing date, or open it again (until its declared closing date)."""
    petition = petition_or_404(slug)
    if ActionForm().validate_on_submit():
        petition.closed_early_at = utcnow() if action == "close" else None
        db.session.commit()
        catalogue.forget()
        flash(f"{petition.title} is closed: it takes no more signatures." if action == "close"
              else f"{petition.title} is open again until {petition.closes_on:%-d %B %Y}.")
    return redirect(url_for(".petition", slug=slug), code=303)


@bp.get("/petitions/<slug>/report")
def report(slug: str):
    """The delivery report: what an embassy is handed. Public names only, streamed for large petitions."""
    petition = petition_or_404(slug)
    _audit("report", petition.id)
    db.session.commit()
    confirmed = counts.confirmed_counts(petition.id)

    def public_names():  # read while the page streams, not before: constant memory for any size
        yield from db.session.execute(
            select(Signature.name, Signature.country)
            .where(Signature.petition_id == petition.id, Signature.status == CONFIRMED, Signature.public.is_(True))
            .order_by(Signature.confirmed_at, Signature.id)
            .execution_options(yield_per=exports.CHUNK))

    return Response(stream_with_context(stream_template(
        "organisers/report.html", petition=petition, total=confirmed.total,
        by_country=sorted(confirmed.by_country.items(), key=lambda kv: -kv[1]), country_name=country_name,
        names=public_names(), printed=utcnow())))


@bp.route("/signatures", methods=["GET", "POST"])
def find():
    """Answer a signer's request: find their signatures, and the submissions nobody has confirmed yet, by
    e-mail, to erase them."""
    form = FindForm()
    found = waiting = None
    if form.validate_on_submit():
        canonical = _canonical(form)
        if canonical is not None:
            found = db.session.scalars(select(Signature).where(Signature.email_canonical == canonical)
                                       .order_by(Signature.id)).all()
            waiting = _waiting(canonical)
            # Nothing of the address looked up is kept: only that somebody was, and what was found.
            _audit("find", detail=f"{_count(len(found), 'signature')}, "
                                  f"{_count(len(waiting), 'unconfirmed submission')} found")
            db.session.commit()
    return render_template("organisers/find.html", form=form, found=found, waiting=waiting, action=ActionForm(),
                           country_name=country_name)


@bp.post("/submissions/erase")
def erase_submissions():
    """Erase every unconfirmed submission of one address, on every petition. The address is posted, never put
    in a URL: the first post shows what will be erased, and only the post from that page erases."""
    form = EraseSubmissionsForm()
    canonical = _canonical(form) if form.validate_on_submit() else None
    if canonical is None:
        return redirect(url_for(".find"), code=303)
    if not form.is_confirmed():
        return render_template("organisers/erase_submissions.html", form=form, waiting=_waiting(canonical),
                               action=ActionForm(), country_name=country_name)
    erased = db.session.execute(delete(Submission).where(Submission.email_canonical == canonical)).rowcount
    _audit("erase_submissions", detail=f"{_count(erased, 'unconfirmed submission')} erased")
    if erased:
        erasure.mark()
    db.session.commit()
    if erased:
        erasure.settle()
    flash(f"{_count(erased, 'unconfirmed submission')} erased, with their e-mails.")
    return redirect(url_for(".find"), code=303)


def _waiting(canonical: str) -> list[Submission]:
    return list(db.session.scalars(select(Submission).where(Submission.email_canonical == canonical)
                                   .order_by(Submission.id)))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _canonical(form: FindForm) -> str | None:
    try:
        return emails.canonical(form.email.data)
    except emails.InvalidEmail as error:
        form.email.errors.append(str(error))
        return None


def _signature(signature_id: int) -> Signature:
    signature = db.session.get(Signature, signature_id)
    if signature is None:
        abort(404, description="That signature no longer exists.")
    return signature


@bp.route("/signatures/<int(max=2147483647):signature_id>/erase", methods=["GET", "POST"])
def erase(signature_id: int):
    """Asks first: the page says whose signature goes and what goes with it; only its post erases."""
    signature = _signature(signature_id)
    slug = signature.petition.slug
    form = EraseForm(back=request.args.get("back"))
    # Back to the search the organiser came from, or to the petition: never to an address from the form.
    back = url_for(".find") if form.back.data == "find" else url_for(".petition", slug=slug)
    if not (form.validate_on_submit() and form.is_confirmed()):
        waiting = db.session.scalar(select(func.count()).select_from(Submission).where(
            Submission.petition_id == signature.petition_id, Submission.email_canonical == signature.email_canonical))
        return render_template("organisers/erase_signature.html", signature=signature, waiting=waiting, form=form,
                               back=back)
    _audit("erase_signature", signature.petition_id)
    signing.withdraw(signature)  # commits the audit record with the erasure
    counts.forget()
    flash("The signature and all its personal data are erased.")
    return redirect(back, code=303)


@bp.post("/signatures/<int(max=2147483647):signature_id>/accept")
def accept(signature_id: int):
    """A held signature, confirmed by its owner, counts from now on."""
    signature = _signature(signature_id)
    if ActionForm().validate_on_submit() and signature.status == HELD:
        signature.status = CONFIRMED
        _audit("accept", signature.petition_id)
        db.session.commit()
        counts.forget()
        flash("Accepted: the signature counts.")
    return redirect(url_for(".petition", slug=signature.petition.slug), code=303)


@bp.post("/signatures/<int(max=2147483647):signature_id>/discard")
def discard(signature_id: int):
    signature = _signature(signature_id)
    slug = signature.petition.slug
    if ActionForm().validate_on_submit() and signature.status == HELD:
        _audit("discard", signature.petition_id)
        signing.withdraw(signature)  # commits the audit record with the deletion
        flash("Discarded: the held signature is deleted.")
    return redirect(url_for(".petition", slug=slug), code=303)
