"""Public counts, derived from the signature rows on every (briefly cached) read.

Nothing is incremented anywhere, so there is no counter to drift or to lock: the count is the number of
confirmed rows, read through the ``ix_signature_counting`` index and reused for a few seconds per process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as clock_time

from flask import current_app
from sqlalchemy import func, select

from .extensions import db
from .models import CONFIRMED, HELD, PENDING, Petition, Signature, Submission, utcnow


@dataclass(frozen=True)
class Counts:
    total: int
    by_country: dict[str, int] = field(default_factory=dict)


_lock = threading.Lock()


def _cache() -> dict[int, tuple[float, Counts]]:
    """Per application, so two apps in one process (tests) never see each other's numbers."""
    return current_app.extensions.setdefault("petition.counts", {})


def confirmed_counts(petition_id: int) -> Counts:
    """Confirmed signatures of one petition, in total and by country.

    When the cached numbers go stale, one thread counts again and the others keep answering with the last
    numbers meanwhile: under load every thread of a worker would otherwise count a million rows at once."""
    ttl = current_app.config["COUNT_CACHE_SECONDS"]
    now = time.monotonic()
    cache = _cache()
    cached = cache.get(petition_id)
    if cached and cached[0] > now:
        return cached[1]
    if ttl <= 0:
        return _count(petition_id)
    refreshing = current_app.extensions.setdefault("petition.counts-refreshing", set())
    with _lock:
        if cached and petition_id in refreshing:
            return cached[1]
        refreshing.add(petition_id)
    try:
        counts = _count(petition_id)
        with _lock:
            cache[petition_id] = (time.monotonic() + ttl, counts)
    finally:
        with _lock:
            refreshing.discard(petition_id)
    return counts


def _count(petition_id: int) -> Counts:
    rows = db.session.execute(
        select(Signature.country, func.count())
        .where(Signature.petition_id == petition_id, Signature.status == CONFIRMED)
        .group_by(Signature.country)
        .order_by(Signature.country)
    ).all()
    return Counts(total=sum(n for _, n in rows), by_country={country: n for country, n in rows})


def confirmed_by_country_and_day(petition_id: int) -> list[tuple[str, str, int]]:
    """(day, country, count) rows: the public 'export counts'."""
    day = func.date(Signature.confirmed_at)
    rows = db.session.execute(
        select(day, Signature.country, func.count())
        .where(Signature.petition_id == petition_id, Signature.status == CONFIRMED)
        .group_by(day, Signature.country)
        .order_by(day, Signature.country)
    ).all()
    return [((d.isoformat() if isinstance(d, date) else str(d)), c, n) for d, c, n in rows]


def forget() -> None:
    """Drop this process's cached counts and what was rendered from them (API answers, sign pages)."""
    with _lock:
        _cache().clear()
        for rendered in ("petition.api", "petition.api-responses"):
            current_app.extensions.get(rendered, {}).clear()


def summary(petition: Petition) -> dict:
    """The public JSON shape of a petition: no personal data, confirmed signatures only."""
    counts = confirmed_counts(petition.id)
    return {
        "slug": petition.slug,
        "title": petition.title,
        "target": petition.target,
        "goal": petition.goal,
        "signature_count": counts.total,
        "is_open": petition.is_open,
        "state": petition.state(),
        "closed_on": petition.closed_on.isoformat() if petition.closed_on else None,
        "opens_at": petition.opens_on.isoformat(),
        "closes_at": petition.closes_on.isoformat(),
        "by_country": counts.by_country,
    }


def by_status(petition_id: int) -> dict[str, dict[str, int]]:
    """For organisers, in total and today (UTC): confirmed signatures, held ones (confirmed by their owners,
    waiting for review) and pending submissions (nobody has confirmed them yet)."""
    start = datetime.combine(utcnow().date(), clock_time.min)
    empty = {CONFIRMED: 0, PENDING: 0, HELD: 0}
    total = dict(empty)
    total.update(db.session.execute(
        select(Signature.status, func.count()).where(Signature.petition_id == petition_id)
        .group_by(Signature.status)).all())
    today = dict(empty)
    today.update(db.session.execute(
        select(Signature.status, func.count())
        .where(Signature.petition_id == petition_id, Signature.confirmed_at >= start)
        .group_by(Signature.status)).all())
    pending = select(func.count()).where(Submission.petition_id == petition_id)
    total[PENDING] = db.session.scalar(pending)
    today[PENDING] = db.session.scalar(pending.where(Submission.created_at >= start))
    return {"total": total, "today": today}


def confirmed_per_day(petition_id: int) -> list[tuple[date, int]]:
    """Confirmed signatures per day of confirmation (UTC), oldest first."""
    per_day: dict[str, int] = {}
    for day, _, number in confirmed_by_country_and_day(petition_id):
        per_day[day] = per_day.get(day, 0) + number
    return [(date.fromisoformat(day), number) for day, number in per_day.items()]
