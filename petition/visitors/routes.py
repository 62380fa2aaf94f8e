"""Visitor views. The sign page and the thanks page are pages of the built site; the service takes the form's
POST and serves the links in e-mails. No view here reads or writes a session: a visitor's browser is given
no cookie. Each POST ends in a redirect (post/redirect/get), so a reload never resubmits."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from .. import abuse, counts, intake, signing, tokens
from ..catalogue import petition_or_404
from ..layout import wants_fragment
from ..models import Petition, Signature
from ..paths import sign_page, sign_path, thanks_page
from .forms import COUNTRY_NAMES, SignForm

bp = Blueprint("visitors", __name__)

# A petition that cannot take signatures says why with the status code too.
STATE_STATUS = {"closed": 410, "not_open": 409}


def render_petition_page(template: str, petition: Petition, status: int = 200, fragment: str | None = None,
                         with_counts: bool = True, **context):
    """The full page, or with ``X-Petition-Fragment`` only its ``fragment`` template."""
    headers = {"Vary": "X-Petition-Fragment"}
    partial = bool(fragment) and wants_fragment()
    if partial:
        template = fragment
        headers["X-Petition-Fragment"] = "1"  # the script shows only answers that say so
    if with_counts:
        context["counts"] = counts.confirmed_counts(petition.id)
    context.update(petition=petition, fragment=partial, sign_page=sign_page(petition.slug))
    return render_template(template, **context), status, headers


def unavailable(petition: Petition):
    state = petition.state()
    return render_petition_page("unavailable.html", petition, STATE_STATUS[state], "_unavailable.html",
                                state=state)


@bp.post("/petitions/<slug>/sign")
def sign(slug: str):
    """Every valid post does the same work and gets the same answer, whoever sends it (see ``intake``)."""
    petition = petition_or_404(slug, cached=True)
    if not petition.is_open:
        return unavailable(petition)
    client = abuse.ip_hash()  # once a request: the limits count it, the submission keeps it
    abuse.refuse_over_hard_limit(slug, client)
    form = SignForm(request.form)
    if form.validate():
        address = form.email.address
        intake.record(petition, intake.Answers(
            name=form.name.data, email=address.normalised, email_canonical=address.canonical,
            mailbox=address.mailbox, country=form.country.data, postcode=form.postcode.data,
            comment=form.comment.data, public=form.public.data, updates=form.updates.data,
        ), held=abuse.held(request.form, slug, address.canonical.rpartition("@")[2], client), ip_hash=client)
        if wants_fragment():  # signing in place: the thanks page's words, inside the petition's page
            return render_petition_page("thanks.html", petition, fragment="_thanks.html", with_counts=False)
        return redirect(thanks_page(slug), code=303)
    return render_petition_page("sign.html", petition, 422, "_sign_form.html", form=form, action=sign_path(slug),
                                privacy_url=current_app.config["PRIVACY_URL"])


def live(template: str, **context):
    """A part of the site's pages that follows the petition as it is now (see ``embedded.include``, and nginx's
    SSI): the same for every reader, so nginx keeps it for ``COUNT_MAX_AGE`` seconds and asks once then."""
    response = current_app.make_response(render_template(template, **context))
    response.headers["Cache-Control"] = f"public, max-age={current_app.config['COUNT_MAX_AGE']}"
    return response


@bp.get("/petitions/<slug>/live/status")
def live_status(slug: str):
    """Count and state, for a petition's card (``?button=1``: with the way to the sign page while open)."""
    petition = petition_or_404(slug, cached=True)
    return live("_live.html", petition=petition, counts=counts.confirmed_counts(petition.id),
                sign_page=sign_page(slug), button=request.args.get("button") == "1")


@bp.get("/petitions/<slug>/live/form")
def live_form(slug: str):
    """The sign form while the petition takes signatures; else what its state is, and no form."""
    petition = petition_or_404(slug, cached=True)
    if not petition.is_open:
        return live("_unavailable.html", petition=petition, state=petition.state())
    return live("_sign_form.html", form=SignForm(), action=sign_path(slug),
                privacy_url=current_app.config["PRIVACY_URL"])


def row_from(slug: str, token: str, purpose: str):
    """The submission or signature a link names, or the page that explains why the link no longer works."""
    petition = petition_or_404(slug, cached=True)
    try:
        row = tokens.load(token, purpose)
    except tokens.TokenError as error:
        return None, (render_template("link_invalid.html", petition=petition, expired=error.expired,
                                      purpose=purpose, sign_page=sign_page(slug)), 410 if error.expired else 404)
    if row.petition_id != petition.id:
        return None, (render_template("link_invalid.html", petition=petition, expired=False,
                                      purpose=purpose, sign_page=sign_page(slug)), 404)
    return row, None


@bp.route("/petitions/<slug>/confirm/<token>", methods=["GET", "POST"])
def confirm(slug: str, token: str):
    """GET shows exactly what will be stored and a button: scanners that pre-fetch links must not confirm
    anything, and nobody confirms answers they have not seen. Only the POST confirms."""
    submission, refusal = row_from(slug, token, tokens.CONFIRM)
    if refusal:
        return refusal
    petition = submission.petition
    if not petition.is_open:  # a closed petition counts nobody new, confirmed or not
        return unavailable(petition)
    if request.method == "POST":
        signing.confirm(submission)
        return redirect(url_for(".confirmed", slug=slug), code=303)
    return render_template("confirm.html", petition=petition, submission=submission, sign_page=sign_page(slug),
                           replaces=Signature.of_address(submission.petition_id, submission.email_canonical),
                           country_name=COUNTRY_NAMES.get(submission.country, submission.country))


@bp.get("/petitions/<slug>/confirmed")
def confirmed(slug: str):
    petition = petition_or_404(slug, cached=True)
    return render_petition_page("confirmed.html", petition)


@bp.route("/petitions/<slug>/manage/<token>", methods=["GET", "POST"])
def manage(slug: str, token: str):
    """What we store about one signer, shown only to the holder of the link, and the way to withdraw."""
    signature, refusal = row_from(slug, token, tokens.MANAGE)
    if refusal:
        return refusal
    if request.method == "POST":
        signing.withdraw(signature)
        return redirect(url_for(".withdrawn", slug=slug), code=303)
    return render_template("manage.html", petition=signature.petition, signature=signature,
                           country_name=COUNTRY_NAMES.get(signature.country, signature.country))


@bp.get("/petitions/<slug>/withdrawn")
def withdrawn(slug: str):
    petition = petition_or_404(slug, cached=True)
    return render_template("withdrawn.html", petition=petition, sign_page=sign_page(slug))
