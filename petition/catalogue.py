"""The petitions the service holds: loaded from the editors' declarations (``petition sync``), looked up by slug."""

from __future__ import annotations

import time
from pathlib import Path

from flask import abort, current_app
from sqlalchemy import select

from .declarations import Declaration, load_folder
from .extensions import db
from .models import Petition


def render(body: str) -> str:
    """The petition text as HTML; the same extensions the site uses for lists and attributes."""
    import markdown  # only ``petition sync`` renders: not imported by every command and worker

    return markdown.markdown(body, extensions=["extra", "sane_lists"])


def sync(folder: Path | str) -> list[tuple[str, str]]:
    """Create or update a petition per declaration; return (slug, 'added'|'updated'|'unchanged').

    Petitions whose page was removed stay in the database: their signatures are not the editors' to drop.
    """
    declarations = load_folder(folder)
    existing = {p.slug: p for p in db.session.scalars(select(Petition))}
    report = []
    for declaration in declarations:
        fields = _fields(declaration)
        petition = existing.get(declaration.slug)
        if petition is None:
            db.session.add(Petition(slug=declaration.slug, **fields))
            report.append((declaration.slug, "added"))
        elif any(getattr(petition, key) != value for key, value in fields.items()):
            for key, value in fields.items():
                setattr(petition, key, value)
            report.append((declaration.slug, "updated"))
        else:
            report.append((declaration.slug, "unchanged"))
    db.session.commit()
    return report


def _fields(declaration: Declaration) -> dict:
    return {
        "title": declaration.title,
        "target": declaration.target,
        "summary": declaration.summary,
        "goal": declaration.goal,
        "opens_on": declaration.opens,
        "closes_on": declaration.closes,
        "body_html": render(declaration.body),
    }


def petition_or_404(slug: str, cached: bool = False) -> Petition:
    """The petition at this slug. ``cached``: a read-only (detached) copy reused by this process for
    ``COUNT_CACHE_SECONDS``, for the pages every signer loads; organisers always get the live row."""
    ttl = current_app.config["COUNT_CACHE_SECONDS"] if cached else 0
    cache = current_app.extensions.setdefault("petition.catalogue", {})
    hit = cache.get(slug)
    if ttl > 0 and hit and hit[0] > time.monotonic():
        return hit[1]
    petition = db.session.scalar(select(Petition).where(Petition.slug == slug))
    if petition is None:
        abort(404, description="There is no petition at this address.")
    if ttl > 0:
        db.session.expunge(petition)
        cache[slug] = (time.monotonic() + ttl, petition)
    return petition


def forget() -> None:
    """Drop this process's cached petitions (after an organiser changes one)."""
    current_app.extensions.setdefault("petition.catalogue", {}).clear()
