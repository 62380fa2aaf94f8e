"""Organiser views. Every view but login requires a logged-in, active organiser."""

from __future__ import annotations

from flask import (Response, abort, flash, jsonify, redirect, render_template, request, stream_template,
                   stream_with_context, url_for)
from flask_login import current_user, login_user, logout_user
from sqlalchemy import delete, select

from .. import accounts, catalogue, charts, counts, emails, exports, mail, signing
from ..catalogue import petition_or_404
from ..countries import name as country_name
from ..extensions import db, limiter, login_manager
from ..models import CONFIRMED, HELD, ExportLog, Organiser, Petition, Signature, Submission, utcnow
from . import bp
from .forms import ActionForm, ExportForm, FindForm, LoginForm

FORMATS = {"csv": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@login_manager.user_loader
def load_organiser(organiser_id: str) -> Organiser | None:
    organiser = db.session.get(Organiser, int(organiser_id)) if organiser_id.isdigit() else None
    return organiser if organiser and organiser.active else None


@bp.before_request
def require_login():
    """Everything under /organisers/ but the login page itself needs an active organiser."""
    if request.endpoint != "organisers.login" and not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute;50 per hour", methods=["POST"])
def login():
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        organiser = accounts.authenticate(form.email.data, form.password.data)
        if organiser:
            login_user(organiser)
            target = request.args.get("next", "")
            # Only our own organiser pages: never an open redirect.
            if not target.startswith("/organisers/") or target.startswith("//"):
                target = url_for(".dashboard")
            return redirect(target, code=303)
        error = "The e-mail address or the password is not right."  # the same for both
    status = 401 if error else (422 if form.errors else 200)
    return render_template("organisers/login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    if ActionForm().validate_on_submit():
        logout_user()
    return redirect(url_for(".login"), code=303)


@bp.get("/")
def dashboard():
    petitions = db.session.scalars(select(Petition).order_by(Petition.opens_on.desc())).all()
    rows = []
    for petition in petitions:
        status = counts.by_status(petition.id)
        rows.append({"petition": petition, "status": status,
                     "progress": min(100, 100 * status["total"][CONFIRMED] // petition.goal)})
    log = db.session.scalars(select(ExportLog).order_by(ExportLog.id.desc()).limit(20)).all()
    return render_template("organisers/dashboard.html", rows=rows, log=log, form=ActionForm())


@bp.get("/petitions/<slug>")
def petition(slug: str):
    petition = petition_or_404(slug)
    confirmed = counts.confirmed_counts(petition.id)
    held = db.session.scalars(select(Signature).where(Signature.petition_id == petition.id,
                                                      Signature.status == HELD)
                              .order_by(Signature.id).limit(100)).all()
    log = db.session.scalars(select(ExportLog).where(ExportLog.petition_id == petition.id)
                             .order_by(ExportLog.id.desc()).limit(20)).all()
    chart = charts.per_day(counts.confirmed_per_day(petition.id),
                           f"Confirmed signatures per day: {petition.title}", until=utcnow().date())
    return render_template("organisers/petition.html", petition=petition, status=counts.by_status(petition.id),
                           by_country=sorted(confirmed.by_country.items(), key=lambda kv: -kv[1]),
                           country_name=country_name, chart=chart, held=held, log=log,
                           undelivered=mail.given_up(petition.id),
                           export_form=ExportForm(request.args), form=ActionForm())


def _actor() -> str:
    return current_user.email


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
            waiting = db.session.scalars(select(Submission).where(Submission.email_canonical == canonical)
                                         .order_by(Submission.id)).all()
    return render_template("organisers/find.html", form=form, found=found, waiting=waiting, action=ActionForm(),
                           country_name=country_name)


@bp.post("/submissions/erase")
def erase_submissions():
    """Erase every unconfirmed submission of one address (posted, never in a URL), on every petition."""
    form = FindForm()
    canonical = _canonical(form) if form.validate_on_submit() else None
    if canonical is not None:
        erased = db.session.execute(delete(Submission).where(Submission.email_canonical == canonical)).rowcount
        db.session.commit()
        flash(f"{erased} unconfirmed submission{'' if erased == 1 else 's'} erased, with their e-mails.")
    return redirect(url_for(".find"), code=303)


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


@bp.post("/signatures/<int:signature_id>/erase")
def erase(signature_id: int):
    signature = _signature(signature_id)
    slug = signature.petition.slug
    if ActionForm().validate_on_submit():
        signing.withdraw(signature)
        counts.forget()
        flash("The signature and all its personal data are erased.")
    # Back to the search the organiser came from, or to the petition: never to an address from the form.
    return redirect(url_for(".find") if request.form.get("back") == "find" else url_for(".petition", slug=slug),
                    code=303)


@bp.post("/signatures/<int:signature_id>/accept")
def accept(signature_id: int):
    """A held signature, confirmed by its owner, counts from now on."""
    signature = _signature(signature_id)
    if ActionForm().validate_on_submit() and signature.status == HELD:
        signature.status = CONFIRMED
        db.session.commit()
        counts.forget()
        flash("Accepted: the signature counts.")
    return redirect(url_for(".petition", slug=signature.petition.slug), code=303)


@bp.post("/signatures/<int:signature_id>/discard")
def discard(signature_id: int):
    signature = _signature(signature_id)
    slug = signature.petition.slug
    if ActionForm().validate_on_submit() and signature.status == HELD:
        signing.withdraw(signature)
        flash("Discarded: the held signature is deleted.")
    return redirect(url_for(".petition", slug=slug), code=303)
