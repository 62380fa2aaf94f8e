"""Visitor views. Each POST ends in a redirect (post/redirect/get), so a reload never resubmits."""

from __future__ import annotations

import time

from flask import current_app, redirect, render_template, request, url_for

from .. import abuse, counts, sessions, signing, tokens
from ..catalogue import petition_or_404
from ..layout import wants_fragment
from ..models import PENDING, Petition
from . import bp
from .forms import COUNTRY_NAMES, ConfirmForm, SignForm, WithdrawForm

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
    context.update(petition=petition, fragment=partial)
    return render_template(template, **context), status, headers


TOKEN_MARK = b"\x00csrf-token\x00"


def blank_form(petition: Petition):
    """The empty sign page is the same for every visitor but its CSRF token: render it once per
    ``COUNT_CACHE_SECONDS`` (its count is that fresh anyway) and put each visitor's token in. Kept as
    UTF-8 bytes, so the 30 KB page is not encoded again for every visitor; the token is ASCII."""
    token = sessions.csrf_token().encode()
    ttl = current_app.config["COUNT_CACHE_SECONDS"]
    cache = current_app.extensions.setdefault("petition.sign-pages", {})
    key = (petition.slug, wants_fragment())
    hit = cache.get(key)
    if ttl > 0 and hit and hit[0] > time.monotonic():
        body, headers = hit[1], hit[2]
    else:
        page, _, headers = render_petition_page("sign.html", petition, 200, "_sign_form.html", form=SignForm())
        body = page.encode().replace(token, TOKEN_MARK)
        cache[key] = (time.monotonic() + ttl, body, headers)
    return body.replace(TOKEN_MARK, token), 200, headers


@bp.route("/petitions/<slug>/sign", methods=["GET", "POST"])
def sign(slug: str):
    petition = petition_or_404(slug, cached=True)
    state = petition.state()
    if state != "open":
        return render_petition_page("unavailable.html", petition, STATE_STATUS[state], "_unavailable.html",
                                    state=state)
    if request.method == "GET":
        return blank_form(petition)
    abuse.refuse_over_hard_limit(slug)
    form = SignForm()
    if form.validate_on_submit():
        held = abuse.looks_automated(request.form) or abuse.over_soft_limit(slug)
        signing.sign(petition, signing.Submission(
            name=form.name.data,
            email=form.email.data,
            email_canonical=form.email.canonical,
            country=form.country.data,
            postcode=form.postcode.data,
            comment=form.comment.data,
            public=form.public.data,
            updates=form.updates.data,
            ip_hash=abuse.ip_hash(),
            held=held,
        ))
        return redirect(url_for(".thanks", slug=slug), code=303)
    status = 422 if form.errors else 200
    return render_petition_page("sign.html", petition, status, "_sign_form.html", form=form)


@bp.get("/petitions/<slug>/thanks")
def thanks(slug: str):
    """The same page for a new and a repeat signer: nobody learns here who has signed."""
    return render_petition_page("thanks.html", petition_or_404(slug, cached=True), fragment="_thanks.html",
                                with_counts=False)


def signature_from(slug: str, token: str, purpose: str):
    """The signature a link names, or the page that explains why the link no longer works."""
    petition = petition_or_404(slug, cached=True)
    try:
        signature = tokens.load(token, purpose)
    except tokens.TokenError as error:
        return None, (render_template("link_invalid.html", petition=petition, expired=error.expired,
                                      purpose=purpose), 410 if error.expired else 404)
    if signature.petition_id != petition.id:
        return None, (render_template("link_invalid.html", petition=petition, expired=False,
                                      purpose=purpose), 404)
    return signature, None


@bp.route("/petitions/<slug>/confirm/<token>", methods=["GET", "POST"])
def confirm(slug: str, token: str):
    """GET only shows a button: scanners that pre-fetch links must not confirm anything."""
    signature, refusal = signature_from(slug, token, tokens.CONFIRM)
    if refusal:
        return refusal
    form = ConfirmForm()
    if form.validate_on_submit():
        signing.confirm(signature)
        return redirect(url_for(".confirmed", slug=slug), code=303)
    return render_template("confirm.html", petition=signature.petition, form=form,
                           pending=signature.status == PENDING)


@bp.get("/petitions/<slug>/confirmed")
def confirmed(slug: str):
    petition = petition_or_404(slug, cached=True)
    return render_petition_page("confirmed.html", petition)


@bp.route("/petitions/<slug>/manage/<token>", methods=["GET", "POST"])
def manage(slug: str, token: str):
    """What we store about one signer, shown only to the holder of the link, and the way to withdraw."""
    signature, refusal = signature_from(slug, token, tokens.MANAGE)
    if refusal:
        return refusal
    form = WithdrawForm()
    if form.validate_on_submit():
        signing.withdraw(signature)
        return redirect(url_for(".withdrawn", slug=slug), code=303)
    return render_template("manage.html", petition=signature.petition, signature=signature, form=form,
                           country_name=COUNTRY_NAMES.get(signature.country, signature.country))


@bp.get("/petitions/<slug>/withdrawn")
def withdrawn(slug: str):
    petition = petition_or_404(slug, cached=True)
    return render_template("withdrawn.html", petition=petition)
