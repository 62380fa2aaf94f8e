"""Simultaneous submissions: the unique index decides duplicates, and counts match the rows exactly."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from petition import signing
from petition.extensions import db
from petition.models import CONFIRMED, PENDING, OutboxMessage, Petition, Signature

from conftest import VALID, csrf_token

pytestmark = pytest.mark.slow
SIGN = "/petitions/vadim-kuramshin/sign"


def parallel(app, count: int, data_for) -> list[int]:
    """``count`` browsers, each with its own session and CSRF token, post at the same moment."""
    clients = [app.test_client() for _ in range(count)]
    tokens = [csrf_token(c, SIGN) for c in clients]
    barrier = threading.Barrier(count)

    def post(index: int) -> int:
        barrier.wait()
        return clients[index].post(SIGN, data={**data_for(index), "csrf_token": tokens[index]}).status_code

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(post, range(count)))


def test_fifty_identical_submissions_make_exactly_one_signature(app):
    # One network: past the soft limit a post is held, and a held post may win the race to insert; the
    # limits have their own tests, this one is about the duplicate race.
    app.config.update(SIGN_SOFT_LIMIT="1000 per hour", SIGN_HARD_LIMIT="1000 per hour")
    statuses = parallel(app, 50, lambda i: VALID)
    assert statuses == [303] * 50
    with app.app_context():
        assert db.session.scalars(select(Signature.status)).all() == [PENDING]
        mails = db.session.scalar(select(func.count()).select_from(OutboxMessage))
        assert mails == app.config["MAILS_PER_SIGNATURE"]  # the cap holds under the race too


def test_counts_never_drift_under_concurrent_signing_and_confirming(app):
    app.config.update(SIGN_SOFT_LIMIT="1000 per hour", SIGN_HARD_LIMIT="1000 per hour")  # 40 people, one network
    statuses = parallel(app, 40, lambda i: {**VALID, "email": f"signer{i}@example.org",
                                            "country": ("KZ", "GB", "DE", "FR")[i % 4]})
    assert statuses == [303] * 40
    with app.app_context():
        ids = db.session.scalars(select(Signature.id)).all()
    to_confirm = ids[::2] + ids[::2]  # every other signature, each confirmed twice at once

    def confirm(signature_id: int) -> bool:
        with app.app_context():
            return signing.confirm(db.session.get(Signature, signature_id))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(confirm, to_confirm))
    assert sum(results) == len(ids[::2]) == 20  # each confirmed exactly once

    api = app.test_client().get("/api/petitions/vadim-kuramshin").json
    with app.app_context():
        petition_id = db.session.scalar(select(Petition.id).where(Petition.slug == "vadim-kuramshin"))
        rows = db.session.execute(
            select(Signature.country, func.count())
            .where(Signature.petition_id == petition_id, Signature.status == CONFIRMED)
            .group_by(Signature.country)).all()
    assert api["signature_count"] == sum(n for _, n in rows) == 20
    assert api["by_country"] == dict(rows)
