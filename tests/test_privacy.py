"""The privacy lifecycle: purge after the retention time with exact counts, and a notice that tells the truth."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from petition import purge
from petition.extensions import db
from petition.models import CONFIRMED, HELD, OutboxMessage, Petition, Signature, Submission, utcnow
from petition.settings import SETTINGS

NOTICE = Path(__file__).resolve().parent.parent / "docs" / "en" / "privacy.md"
README = NOTICE.parents[2] / "README.md"
BACKUP_DAYS = 14
DEFAULTS = {s.env: s.default for s in SETTINGS}


def fill(app, slug: str, rows) -> None:
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == slug))
        for n, (country, status, day) in enumerate(rows):
            signature = Signature(
                petition_id=petition.id, name=f"Person {n}", email=f"{slug}{n}@example.org",
                email_canonical=f"{slug}{n}@example.org", country=country, postcode="AB1", comment="Hello",
                public=True, updates=True, status=status, ip_hash="f" * 32,
                created_at=datetime.fromisoformat(day), confirmed_at=datetime.fromisoformat(day) if status == CONFIRMED else None)
            db.session.add(signature)
            db.session.flush()
            db.session.add(OutboxMessage(signature_id=signature.id, kind="counted"))
        db.session.commit()


def submitted(app, slug: str, created: datetime, email: str = "waiting@example.org") -> None:
    """An unconfirmed submission, with its e-mail queued."""
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == slug))
        submission = Submission(petition_id=petition.id, name="Not Yet", email=email, email_canonical=email,
                                mailbox=email, country="KZ", created_at=created)
        db.session.add(submission)
        db.session.flush()
        db.session.add(OutboxMessage(submission_id=submission.id, kind="confirm"))
        db.session.commit()


def submission_emails(app) -> list[str]:
    with app.app_context():
        return sorted(db.session.scalars(select(Submission.email)))


ROWS = [("KZ", CONFIRMED, "2020-03-01T10:00"), ("KZ", CONFIRMED, "2020-03-01T11:00"),
        ("GB", CONFIRMED, "2020-03-02T09:00"), ("DE", CONFIRMED, "2020-03-02T09:30"), ("RU", HELD, "2020-03-03T08:00")]


def test_purge_erases_personal_data_and_keeps_every_count(app, client, runner):
    fill(app, "closed-one", ROWS)  # closed on 2020-12-31
    fill(app, "vadim-kuramshin", ROWS[:2])  # open: untouched
    before = client.get("/api/petitions/closed-one/counts.json").json
    with app.app_context():
        from petition import exports

        organiser_before = exports.counts_by_day_country_status(
            db.session.scalar(select(Petition).where(Petition.slug == "closed-one")))

    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0 and "closed-one: 5 signatures anonymised" in result.output
    assert client.get("/api/petitions/closed-one/counts.json").json == before
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == "closed-one"))
        assert exports.counts_by_day_country_status(petition) == organiser_before
        purged = db.session.scalars(select(Signature).where(Signature.petition_id == petition.id)).all()
        for s in purged:
            assert (s.name, s.email, s.postcode, s.comment, s.ip_hash, s.public, s.updates) == ("", "", "", "", None, False, False)
            assert s.email_canonical == f"purged-{s.id}" and s.purged_at is not None
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                 .where(OutboxMessage.signature_id.in_([s.id for s in purged]))) == 0
        kept = db.session.scalars(select(Signature.name).where(Signature.petition_id != petition.id)).all()
        assert kept == ["Person 0", "Person 1"]

    again = runner.invoke(args=["purge"])  # idempotent
    assert "closed-one: 0 signatures anonymised" in again.output


def test_purge_deletes_unconfirmed_submissions_whole(app, runner):
    """Answers nobody confirmed have no count to keep: those of a purged petition go, and anywhere those whose
    confirmation link has expired."""
    submitted(app, "closed-one", datetime(2020, 6, 1), "closed@example.org")
    submitted(app, "vadim-kuramshin", utcnow() - timedelta(days=app.config["CONFIRM_DAYS"], hours=1),
              "expired@example.org")
    submitted(app, "vadim-kuramshin", utcnow() - timedelta(days=1), "recent@example.org")
    dry = runner.invoke(args=["purge", "--dry-run"])
    assert "2 unconfirmed submissions with expired links would be deleted" in dry.output
    assert len(submission_emails(app)) == 3
    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert submission_emails(app) == ["recent@example.org"]
    with app.app_context():  # their queued e-mails went with them
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_purge_waits_for_the_retention_time(app):
    fill(app, "closed-one", ROWS[:1])
    with app.app_context():
        assert purge.purge(180, today=date(2021, 6, 29)) == {}  # 180 days after 31 Dec 2020 is 29 June 2021
        assert purge.purge(180, today=date(2021, 6, 30), dry_run=True) == {"closed-one": 1}
        assert db.session.scalar(select(Signature.name)) == "Person 0"  # a dry run changes nothing
        assert purge.purge(180, today=date(2021, 6, 30)) == {"closed-one": 1}


def test_a_petition_closed_early_is_purged_from_its_early_close(app):
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin"))
        petition.closed_early_at = datetime(2026, 12, 1, 12)
        db.session.commit()
        assert purge.closed_on(petition) == date(2026, 12, 1)
        assert [p.slug for p in purge.due(180, today=date(2026, 12, 1) + timedelta(days=181))] == [
            "closed-one", "vadim-kuramshin"]


def test_a_purged_signers_links_stop_working(app, client):
    fill(app, "closed-one", ROWS[:1])
    with app.app_context():
        from petition import tokens

        link = f"/petitions/closed-one/manage/{tokens.make(db.session.scalar(select(Signature)), tokens.MANAGE)}"
        purge.purge(180)
    assert client.get(link).status_code == 404


def test_the_privacy_notice_states_the_configured_numbers():
    text = " ".join(NOTICE.read_text(encoding="utf-8").split())
    assert f"**{DEFAULTS['PETITION_RETENTION_DAYS']} days after the petition closes**" in text
    assert f"a confirmation link after {DEFAULTS['PETITION_CONFIRM_DAYS']} days" in text
    assert f"link after {DEFAULTS['PETITION_MANAGE_DAYS']} days" in text
    assert "keyed hash" in text and "do not store your IP address" in text
    assert f"replaced every {DEFAULTS['PETITION_IP_HASH_DAYS']} days" in text
    assert f"erased {DEFAULTS['PETITION_IP_HASH_DAYS']} days after you sign" in text
    # Backups are the operator's to rotate: README tells them the same number.
    readme = " ".join(README.read_text(encoding="utf-8").split())
    assert f"kept for at most {BACKUP_DAYS} days" in text and f"no longer than {BACKUP_DAYS} days" in readme
    numbers = {int(n) for n in re.findall(r"\b(\d+) days\b", text)}
    assert numbers == {DEFAULTS["PETITION_RETENTION_DAYS"], DEFAULTS["PETITION_CONFIRM_DAYS"],
                       DEFAULTS["PETITION_MANAGE_DAYS"], DEFAULTS["PETITION_IP_HASH_DAYS"],
                       BACKUP_DAYS}  # no other promise the code or README does not keep
