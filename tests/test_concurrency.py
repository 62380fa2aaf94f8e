"""Simultaneous submissions and confirmations: every post is kept, the e-mail cap and the soft limit hold under
the race, the unique index decides duplicates, and counts match the rows exactly."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import limits
import pytest
from sqlalchemy import func, select

from petition.extensions import db
from petition.models import CONFIRMED, HELD, Petition, Signature, Submission

from conftest import SAME_ORIGIN, VALID, links_in, run_sender, submit

pytestmark = pytest.mark.slow
COUNT = "/api/petitions/vadim-kuramshin"


def parallel(app, count: int, request) -> list:
    """``count`` browsers, each its own test client, send ``request(client, index)`` at the same moment."""
    clients = [app.test_client() for _ in range(count)]
    barrier = threading.Barrier(count)

    def send(index: int):
        barrier.wait()
        return request(clients[index], index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(send, range(count)))


def confirm_at_once(app, links: list[str]) -> list[int]:
    return parallel(app, len(links), lambda client, i: client.post(links[i], headers=SAME_ORIGIN).status_code)


def signatures(app) -> list[Signature]:
    with app.app_context():
        found = db.session.scalars(select(Signature).order_by(Signature.id)).all()
        db.session.expunge_all()
        return found


def submission_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Submission))


def test_fifty_identical_submissions_make_one_signature_counted_once(app, mailbox):
    # One network: past the soft limit a submission is held, and confirming a held one would count nothing yet;
    # the limits have their own tests, this one is about the race.
    app.config.update(SIGN_SOFT_LIMIT="1000 per hour", SIGN_HARD_LIMIT="1000 per hour")
    statuses = parallel(app, 50, lambda client, i: submit(client).status_code)
    assert statuses == [303] * 50
    assert submission_count(app) == 50  # every post kept, none merged or lost
    run_sender(app, mailbox)
    assert len(mailbox.messages) == app.config["MAILS_PER_MAILBOX"]  # the cap holds under the race too
    assert {m["To"].addresses[0].addr_spec for m in mailbox.messages} == {VALID["email"]}

    answers = confirm_at_once(app, [links_in(m)["confirm"] for m in mailbox.messages] * 2)  # each link twice
    assert 303 in answers and set(answers) <= {303, 404}  # a link whose submission went first leads nowhere
    [signature] = signatures(app)
    assert signature.status == CONFIRMED and signature.email_canonical == VALID["email"]
    assert submission_count(app) == 0
    assert app.test_client().get(COUNT).json["signature_count"] == 1


def test_forty_people_from_one_network_are_all_mailed_and_counts_never_drift(app, mailbox):
    """Forty people behind one address sign at the same moment under the default limits: the soft limit holds
    all but its burst, every one of them still gets their e-mail, and confirming (each link twice at once)
    leaves counts equal to the rows."""
    statuses = parallel(app, 40, lambda client, i: submit(client, email=f"signer{i}@example.org", name=f"Signer {i}",
                                                          country=("KZ", "GB", "DE", "FR")[i % 4]).status_code)
    assert statuses == [303] * 40
    burst = min(item.amount for item in limits.parse_many(app.config["SIGN_SOFT_LIMIT"]))
    with app.app_context():
        held = db.session.scalars(select(Submission.held)).all()
    assert len(held) == 40 and held.count(False) == burst  # the limit's count is exact under the race
    assert run_sender(app, mailbox) == (40, 0)
    for i in range(40):
        assert len(mailbox.to(f"signer{i}@example.org")) == 1, i

    links = [links_in(mailbox.to(f"signer{i}@example.org")[0])["confirm"] for i in range(0, 40, 2)]
    answers = confirm_at_once(app, links * 2)
    assert answers.count(303) >= len(links) and set(answers) <= {303, 404}
    confirmed = signatures(app)
    assert sorted(s.email for s in confirmed) == sorted(f"signer{i}@example.org" for i in range(0, 40, 2))
    assert submission_count(app) == 20  # the unconfirmed half waits

    api = app.test_client().get(COUNT).json
    with app.app_context():
        petition_id = db.session.scalar(select(Petition.id).where(Petition.slug == "vadim-kuramshin"))
        rows = db.session.execute(
            select(Signature.country, func.count())
            .where(Signature.petition_id == petition_id, Signature.status == CONFIRMED)
            .group_by(Signature.country)).all()
    counted = [s for s in confirmed if s.status == CONFIRMED]
    assert api["signature_count"] == sum(n for _, n in rows) == len(counted)
    assert api["by_country"] == dict(rows)
    assert len(counted) + sum(s.status == HELD for s in confirmed) == 20
