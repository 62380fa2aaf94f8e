"""The audit of care work: viewing the delivery report, looking a signer up, erasing, accepting and discarding
are recorded with who did it and when, shown to organisers, and never hold the address looked up nor any
signer's data."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from petition import accounts, hashing
from petition.extensions import db
from petition.models import CONFIRMED, HELD, AuditRecord, Petition, Signature, Submission, utcnow

from test_organisers import PASSWORD, action, log_in

SLUG = "vadim-kuramshin"
SIGNERS = [  # name, e-mail, status
    ("Вадим Курамшин", "vadim@example.org", CONFIRMED),
    ("Held Person", "held@example.org", HELD),
    ("Second Held", "second@example.org", HELD),
]
PENDING = ("Pending Person", "pending@example.org")  # a submission nobody has confirmed


@pytest.fixture
def organiser(app):
    with app.app_context():
        accounts.add("organiser@example.org", PASSWORD)
    return "organiser@example.org"


@pytest.fixture
def office(app, client, organiser):
    """A logged-in organiser, with signatures and a submission in the database."""
    with app.app_context():
        petition_id = db.session.scalar(select(Petition.id).where(Petition.slug == SLUG))
        for name, email, status in SIGNERS:
            db.session.add(Signature(petition_id=petition_id, name=name, email=email, email_canonical=email,
                                     country="KZ", status=status, confirmed_at=utcnow()))
        db.session.add(Submission(petition_id=petition_id, name=PENDING[0], email=PENDING[1],
                                  email_canonical=PENDING[1], mailbox=PENDING[1], country="DE"))
        db.session.commit()
    assert log_in(client, organiser).status_code == 303
    return client


def records(app) -> list[tuple]:
    with app.app_context():
        return [(r.actor, r.action, r.petition.slug if r.petition else None, r.detail)
                for r in db.session.scalars(select(AuditRecord).order_by(AuditRecord.id))]


def do_the_care_work(app, office) -> None:
    with app.app_context():
        ids = {s.email: s.id for s in db.session.scalars(select(Signature))}
    assert office.get(f"/organisers/petitions/{SLUG}/report").status_code == 200
    assert "1 signature found" in action(office, "/organisers/signatures", email="Vadim@Example.org").get_data(
        as_text=True)
    assert action(office, f"/organisers/signatures/{ids['vadim@example.org']}/erase", confirmed="yes",
                  back="find").status_code == 303
    assert action(office, "/organisers/signatures", email=PENDING[1]).status_code == 200
    assert action(office, "/organisers/submissions/erase", email=PENDING[1], confirmed="yes").status_code == 303
    assert action(office, f"/organisers/signatures/{ids['held@example.org']}/accept").status_code == 303
    assert action(office, f"/organisers/signatures/{ids['second@example.org']}/discard").status_code == 303


def test_each_kind_of_care_work_is_recorded(app, office, organiser):
    do_the_care_work(app, office)
    assert records(app) == [
        (organiser, "report", SLUG, ""),
        (organiser, "find", None, "1 signature, 0 unconfirmed submissions found"),
        (organiser, "erase_signature", SLUG, ""),
        (organiser, "find", None, "0 signatures, 1 unconfirmed submission found"),
        (organiser, "erase_submissions", None, "1 unconfirmed submission erased"),
        (organiser, "accept", SLUG, ""),
        (organiser, "discard", SLUG, ""),
    ]


def test_the_audit_holds_no_address_looked_up_and_no_signers_data(app, office, organiser):
    do_the_care_work(app, office)
    with app.app_context():
        rows = db.session.execute(select(AuditRecord.__table__)).all()  # every column, as stored
        stored = " ".join(str(value) for row in rows for value in row)
        hashes = [hashing.keyed(address) for address in ("vadim@example.org", PENDING[1])]
    assert len(rows) == 7
    stored = stored.replace(organiser, "")  # the actor's own address is the one address it may hold
    secrets = [s[0] for s in SIGNERS] + [s[1] for s in SIGNERS] + list(PENDING) + ["vadim", "Vadim", "@"] + hashes
    assert [secret for secret in secrets if secret in stored] == []


def test_organisers_see_the_latest_care_work(app, office, organiser):
    do_the_care_work(app, office)
    for page in ("/organisers/", f"/organisers/petitions/{SLUG}"):
        html = office.get(page).get_data(as_text=True)
        section = html.split("<h2>Recent care work</h2>", 1)[1]
        assert organiser in section
        assert "Viewed the delivery report" in section and "Accepted a held signature" in section
        assert "Erased a signature" in section and "Discarded a held signature" in section
        for name, email, _ in SIGNERS:
            assert name not in section and email not in section
        assert PENDING[0] not in section and PENDING[1] not in section
    dashboard = office.get("/organisers/").get_data(as_text=True).split("<h2>Recent care work</h2>", 1)[1]
    assert "Looked a signer up" in dashboard and "Erased unconfirmed submissions" in dashboard
    assert "0 signatures, 1 unconfirmed submission found" in dashboard


def test_nothing_is_recorded_before_anything_is_done(app, office):
    with app.app_context():
        signature_id = db.session.scalar(select(Signature.id).where(Signature.email == "vadim@example.org"))
    assert office.get(f"/organisers/signatures/{signature_id}/erase").status_code == 200  # only asks
    assert office.get("/organisers/signatures").status_code == 200  # the empty search form
    assert "No care work yet." in office.get("/organisers/").get_data(as_text=True)
    assert records(app) == []
