"""Count endpoints. Cheap to serve under load: counts are cached per process, and responses carry
``Cache-Control`` and an ETag so browsers and proxies can answer most requests without us."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time

from flask import Response, current_app, jsonify, request
from sqlalchemy import select

from .. import counts
from ..catalogue import petition_or_404
from ..extensions import db
from ..models import Petition
from . import bp, responses
from .openapi import SPEC


@bp.after_request
def allow_cross_origin_reads(response: Response) -> Response:
    """Other solidarity sites may show our counts: any origin may GET them, and do nothing else."""
    if request.method in ("GET", "HEAD"):
        response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def cached_json(key: str, build) -> Response:
    """The JSON of ``build()``, serialised (and its ETag computed) once per ``COUNT_CACHE_SECONDS`` in this
    process: counts are that fresh anyway, and under load most requests then cost a dictionary lookup."""
    ttl = current_app.config["COUNT_CACHE_SECONDS"]
    cache = current_app.extensions.setdefault("petition.api", {})
    hit = cache.get(key)
    if ttl > 0 and hit and hit[0] > time.monotonic():
        body, etag = hit[1], hit[2]
    else:
        body = json.dumps(build(), separators=(",", ":")).encode()
        etag = hashlib.sha1(body).hexdigest()
        hit = cache[key] = (time.monotonic() + ttl, body, etag)
    if ttl > 0:
        responses.reusable_until(hit[0])  # the finished response too, until the numbers go stale
    response = Response(body, mimetype="application/json")
    response.set_etag(etag)
    return cacheable(response)


def cacheable(response: Response) -> Response:
    max_age = current_app.config["COUNT_MAX_AGE"]
    response.headers["Cache-Control"] = (
        f"public, max-age={max_age}, stale-while-revalidate={max_age * 6}, stale-if-error=86400"
    )
    if not response.get_etag()[0]:
        response.add_etag()
    return response.make_conditional(request)



@bp.get("/openapi.json")
def openapi():
    return cacheable(jsonify(SPEC))


@bp.get("/petitions")
def petitions():
    def build():
        rows = db.session.scalars(select(Petition).order_by(Petition.opens_on.desc(), Petition.slug))
        return {"petitions": [counts.summary(p) for p in rows]}

    return cached_json("*", build)


@bp.get("/petitions/<slug>")
def petition(slug: str):
    return cached_json(slug, lambda: counts.summary(petition_or_404(slug, cached=True)))


@bp.get("/petitions/<slug>/counts.json")
def counts_json(slug: str):
    petition = petition_or_404(slug, cached=True)
    rows = counts.confirmed_by_country_and_day(petition.id)
    by_day: dict[str, int] = {}
    by_country: dict[str, int] = {}
    for day, country, number in rows:
        by_day[day] = by_day.get(day, 0) + number
        by_country[country] = by_country.get(country, 0) + number
    return cacheable(jsonify({
        "slug": petition.slug,
        "signature_count": sum(by_day.values()),
        "by_country": dict(sorted(by_country.items())),
        "by_day": by_day,
        "by_day_and_country": [{"day": d, "country": c, "signatures": n} for d, c, n in rows],
    }))


@bp.get("/petitions/<slug>/counts.csv")
def counts_csv(slug: str):
    petition = petition_or_404(slug, cached=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["day", "country", "signatures"])
    writer.writerows(counts.confirmed_by_country_and_day(petition.id))
    response = Response(buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{petition.slug}-counts.csv"'
    return cacheable(response)
