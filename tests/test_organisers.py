"""Organisers: accounts from the command line, login, the dashboard, audited signer lists and counts,
care work, the delivery report, and nothing of it reachable without logging in."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from datetime import datetime, timedelta

import pytest
from flask import url_for
from openpyxl import load_workbook
from sqlalchemy import select

from petition import accounts
from petition.extensions import db
from petition.models import (CONFIRMED, HELD, CompactionDue, ExportLog, OutboxMessage, Organiser, Petition,
                             Signature, Submission, utcnow)

from conftest import SAME_ORIGIN, csrf_token, links_in, need, run_sender, sign_and_confirm, submit

PASSWORD = "correct horse battery staple"
SIGNERS = [
    # name, email, country, status, public, updates, days ago
    ("Вадим Курамшин", "vadim@example.org", "KZ", CONFIRMED, True, True, 0),
    ("=HYPERLINK(\"http://evil.example\")", "formula@example.org", "GB", CONFIRMED, False, False, 1),
    ("Ainur Kurmanov", "ainur@example.org", "KZ", CONFIRMED, False, True, 5),
    ("Held Person", "held@example.org", "RU", HELD, True, False, 0),  # confirmed by its owner, not yet counted
]
PENDING = ("Pending Person", "pending@example.org", "DE")  # a submission nobody has confirmed


@pytest.fixture
def seeded(app):
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin"))
        now = utcnow()
        for name, email, country, status, public, updates, ago in SIGNERS:
            when = now - timedelta(days=ago)
            db.session.add(Signature(
                petition_id=petition.id, name=name, email=email, email_canonical=email, country=country,
                postcode="-1 Secret St", comment="@SUM(1+1)", status=status, public=public, updates=updates,
                created_at=when, confirmed_at=when))
        name, email, country = PENDING
        db.session.add(Submission(petition_id=petition.id, name=name, email=email, email_canonical=email,
                                  mailbox=email, country=country, postcode="-1 Secret St", public=True, updates=True))
        db.session.commit()
    return app


@pytest.fixture
def organiser(app):
    with app.app_context():
        accounts.add("Organiser@Example.org", PASSWORD)
    return "organiser@example.org"


def log_in(client, email: str, password: str = PASSWORD):
    token = csrf_token(client, "/organisers/login")
    return client.post("/organisers/login", data={"csrf_token": token, "email": email, "password": password})


@pytest.fixture
def office(client, organiser, seeded):
    """A client logged in as an organiser, with signatures in the database."""
    assert log_in(client, organiser).status_code == 303
    return client


def action(client, path: str, **data):
    token = csrf_token(client, "/organisers/")
    return client.post(path, data={"csrf_token": token, **data})


# ---------------------------------------------------------------- accounts


def test_accounts_from_the_command_line(app, runner):
    result = runner.invoke(args=["organiser", "add", "amina@example.org", "--generate"])
    assert result.exit_code == 0, result.output
    password = re.search(r"Password: (\S+)", result.output).group(1)
    assert len(password) >= 20
    result = runner.invoke(args=["organiser", "add", "bolat@example.org"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0 and "Organiser bolat@example.org added." in result.output
    refused = runner.invoke(args=["organiser", "add", "AMINA@example.org", "--generate"])
    assert "already an organiser" in refused.output
    assert "Password" not in refused.output  # no password printed that is not the one in force
    for bad in (["add", "not-an-address", "--generate"], ["reset-password", "nobody@example.org", "--generate"]):
        refused = runner.invoke(args=["organiser", *bad])
        assert refused.exit_code == 1 and "Password" not in refused.output, bad
    assert "at least 12 characters" in runner.invoke(args=["organiser", "add", "c@example.org"],
                                                     input="short\nshort\n").output
    with app.app_context():
        stored = db.session.scalar(select(Organiser).where(Organiser.email == "amina@example.org"))
        assert stored.password_hash.startswith("scrypt:") and password not in stored.password_hash
    runner.invoke(args=["organiser", "disable", "bolat@example.org"])
    listing = runner.invoke(args=["organiser", "list"]).output
    assert "amina@example.org\tactive\tlast login never" in listing
    assert "bolat@example.org\tdisabled" in listing
    result = runner.invoke(args=["organiser", "reset-password", "bolat@example.org", "--generate"])
    assert result.exit_code == 0 and "Password: " in result.output
    assert "bolat@example.org\tactive" in runner.invoke(args=["organiser", "list"]).output
    assert runner.invoke(args=["organiser", "disable", "nobody@example.org"]).exit_code == 1


def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(client, organiser):
    wrong = log_in(client, organiser, "not the password at all")
    unknown = log_in(client, "nobody@example.org")
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda r: re.sub(r'value="[^"]+"', "", r.get_data(as_text=True))  # noqa: E731 - tokens differ
    assert strip(wrong) == strip(unknown)
    assert "The e-mail address or the password is not right." in wrong.get_data(as_text=True)


def test_login_needs_csrf_and_sets_a_safe_session_cookie(client, organiser):
    refused = client.post("/organisers/login", data={"email": organiser, "password": PASSWORD})
    assert refused.status_code == 400
    response = log_in(client, organiser)
    assert response.status_code == 303 and response.headers["Location"].endswith("/organisers/")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_login_never_redirects_elsewhere(client, organiser):
    token = csrf_token(client, "/organisers/login")
    response = client.post("/organisers/login?next=https://evil.example/", data={
        "csrf_token": token, "email": organiser, "password": PASSWORD})
    assert response.headers["Location"].endswith("/organisers/")
    assert "evil" not in response.headers["Location"]


def test_login_is_rate_limited(client, organiser):
    """Per client address, whichever accounts it tries (per account, see test_organiser_sessions)."""
    statuses = [log_in(client, f"guess{n}@example.org", "wrong password number x").status_code for n in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    limited = log_in(client, organiser)
    assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_a_disabled_organiser_is_logged_out_at_once(app, office, organiser, runner):
    assert office.get("/organisers/").status_code == 200
    runner.invoke(args=["organiser", "disable", organiser])
    response = office.get("/organisers/")
    assert response.status_code == 302 and "/organisers/login" in response.headers["Location"]


def test_logout(office):
    assert action(office, "/organisers/logout").status_code == 303
    assert office.get("/organisers/").status_code == 302


# ---------------------------------------------------------------- nothing without logging in


SAMPLES = {"slug": "vadim-kuramshin", "token": "not-a-token", "signature_id": 1, "fmt": "csv",
           "filename": "petition.css", "action": "close"}


def sample_url(app, rule) -> str:
    with app.test_request_context():
        return url_for(rule.endpoint, **{name: SAMPLES[name] for name in rule.arguments})


def test_an_anonymous_visitor_reaches_no_organiser_page_and_no_personal_data(app, seeded, client):
    personal = [s[0] for s in SIGNERS] + [s[1] for s in SIGNERS] + list(PENDING[:2]) + ["Secret St", "SUM(1+1)"]
    walked = 0
    for rule in app.url_map.iter_rules():
        url = sample_url(app, rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            body = response.get_data(as_text=True)
            walked += 1
            if rule.endpoint.startswith("organisers.") and rule.endpoint != "organisers.login":
                assert response.status_code in (302, 400), (method, url, response.status_code)
                if response.status_code == 302:
                    assert "/organisers/login" in response.headers["Location"], url
            for secret in personal:
                assert secret not in body, (method, url, secret)
    assert walked >= 25


# ---------------------------------------------------------------- dashboard


def test_the_dashboard_counts_and_charts(app, office):
    html = office.get("/organisers/").get_data(as_text=True)
    assert "Urgent action for Vadim Kuramshin" in html
    assert "<td>3 (1)</td>" in html  # confirmed in total (today)
    assert html.count("<td>1 (1)</td>") == 2  # pending submissions, and held signatures
    # The chart runs from the opening day to today, whatever today is: the petition's dates follow the clock.
    today = utcnow().date()
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin"))
        petition.opens_on, petition.closes_on = today - timedelta(days=3), today + timedelta(days=30)
        db.session.commit()
    opens = today - timedelta(days=3)
    page = office.get("/organisers/petitions/vadim-kuramshin").get_data(as_text=True)
    assert '<svg class="chart"' in page and 'role="img"' in page
    assert "<title id=\"chart-title\">Confirmed signatures per day" in page
    # The signature of five days ago came before the opening: not shown.
    assert (f"<desc id=\"chart-desc\">2 signatures from {opens:%-d %B %Y} to {today:%-d %B %Y}; "
            f"the most, 1, on {today - timedelta(days=1):%-d %B %Y}.</desc>") in page
    assert f">{opens:%-d %b %Y}</text>" in page and f">{today:%-d %b %Y} (today)</text>" in page
    assert "Kazakhstan</td><td>2</td>" in page
    assert "Held Person" in page  # held for review
    # Closed early yesterday: the chart ends that day.
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin"))
        petition.closed_early_at = utcnow() - timedelta(days=1)
        db.session.commit()
    page = office.get("/organisers/petitions/vadim-kuramshin").get_data(as_text=True)
    yesterday = today - timedelta(days=1)
    assert (f"<desc id=\"chart-desc\">1 signature from {opens:%-d %B %Y} to {yesterday:%-d %B %Y}; "
            f"the most, 1, on {yesterday:%-d %B %Y}.</desc>") in page
    assert f">{yesterday:%-d %b %Y}</text>" in page and "(today)" not in page


# ---------------------------------------------------------------- signer lists


def rows_of_csv(response) -> list[list[str]]:
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM: spreadsheet programs then read UTF-8
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def test_csv_signer_list_is_excel_friendly_neutralised_and_audited(app, office, organiser):
    response = office.get("/organisers/petitions/vadim-kuramshin/signatures.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert b"\r\n" in response.get_data()
    rows = rows_of_csv(response)
    assert rows[0][:3] == ["Name", "E-mail", "Country"]
    names = [row[0] for row in rows[1:]]
    assert names == ["Вадим Курамшин", "'=HYPERLINK(\"http://evil.example\")", "Ainur Kurmanov"]
    assert {row[4] for row in rows[1:]} == {"'-1 Secret St"} and {row[5] for row in rows[1:]} == {"'@SUM(1+1)"}
    for row in rows[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row
    with app.app_context():
        [entry] = db.session.scalars(select(ExportLog)).all()
        assert (entry.actor, entry.kind, entry.format, entry.rows) == (organiser, "signatures", "csv", 3)
        assert entry.filters == {"status": "confirmed"}
    assert organiser in office.get("/organisers/").get_data(as_text=True)  # on the dashboard's log


def test_the_csv_the_database_builds_is_what_pythons_csv_module_writes(app):
    """The export's lines are made in SQL; each must equal csv.writer's line for the same cells, quoting and
    neutralising included, on both engines."""
    from petition import exports

    awkward = ['Plain', 'Comma, inside', 'Quote " inside', '"Quoted"', 'Line\nbreak', 'CR\rhere', '=1+1',
               '-1', '+7 701', '@home', '\tTab', 'Курамшин, Вадим', "O'Brien", '', ' space ']
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin"))
        for n, text in enumerate(awkward):
            db.session.add(Signature(petition_id=petition.id, name=text or "x", email=f"{n}{text}@example.org",
                                     email_canonical=f"{n}@example.org", country=("PS", "KZ", "ZZ")[n % 3],
                                     postcode=text, comment=text, public=n % 2 == 0, updates=n % 3 == 0,
                                     status=CONFIRMED, confirmed_at=datetime(2026, 11, 2, 10, 0, n)))
        db.session.commit()
        got = b"".join(exports.csv_chunks(petition, exports.Filters(), exports.begin("t", petition, "signatures",
                                                                                      "csv", {})))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(exports.HEADER)
        for row in exports._typed_rows(petition, exports.Filters()):
            writer.writerow([cell.isoformat(sep=" ") if isinstance(cell, datetime) else
                             "" if cell is None else cell for cell in row])
    assert got.decode("utf-8") == "\ufeff" + buffer.getvalue()
    assert b'"Palestine, State of"' in got  # a country name with a comma, quoted too


def test_csv_chunks_and_cells_holding_the_separators(app, monkeypatch):
    """Rows are read a few at a time; a chunk whose cells hold the characters the database separates cells and
    rows with is written the slow way, and every chunk still equals csv.writer's lines."""
    from petition import exports

    monkeypatch.setattr(exports, "CHUNK_ROWS", 3)
    comments = ["one", "two, with comma", "three", "four\x1fhas FIELD", "five", "six\x1erow", "seven", "=8"]
    with app.app_context():
        petition = db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin"))
        for n, comment in enumerate(comments):
            db.session.add(Signature(petition_id=petition.id, name=f"Signer {n}", email=f"s{n}@example.org",
                                     email_canonical=f"s{n}@example.org", country="KZ", postcode="",
                                     comment=comment, public=False, updates=False, status=CONFIRMED,
                                     confirmed_at=datetime(2026, 11, 2)))
        db.session.commit()
        filters = exports.Filters(status="all")
        chunks = list(exports.csv_chunks(petition, filters, exports.begin("t", petition, "signatures", "csv", {})))
        expected = [[cell.isoformat(sep=" ") if isinstance(cell, datetime) else "" if cell is None else cell
                     for cell in row] for row in exports._typed_rows(petition, filters)]
    assert len(chunks) == 1 + -(-len(expected) // 3)  # the header, then a chunk per three rows
    assert list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))[1:] == expected
    assert [row[5] for row in expected][-8:] == comments[:-1] + ["'=8"]


@pytest.mark.parametrize("query, expected", [
    ("status=all", 4),
    ("status=confirmed&country=KZ", 2),
    ("status=all&updates=y", 2),
    (f"since={(datetime.utcnow() - timedelta(days=2)).date()}", 2),
    (f"until={(datetime.utcnow() - timedelta(days=3)).date()}", 1),
])
def test_filters_choose_the_rows(office, query, expected):
    rows = rows_of_csv(office.get(f"/organisers/petitions/vadim-kuramshin/signatures.csv?{query}"))
    assert len(rows) - 1 == expected


def test_bad_filters_are_a_clear_400(office):
    response = office.get("/organisers/petitions/vadim-kuramshin/signatures.csv?since=2026-05-01&until=2026-01-01")
    assert response.status_code == 400 and "The end date is before the start date." in response.get_data(as_text=True)
    assert office.get("/organisers/petitions/vadim-kuramshin/signatures.csv?country=XX").status_code == 400
    assert office.get("/organisers/petitions/vadim-kuramshin/signatures.pdf").status_code == 404


def test_xlsx_signer_list(office):
    response = office.get("/organisers/petitions/vadim-kuramshin/signatures.xlsx?status=all")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.get_data()), read_only=True).active
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert len(rows) == 5 and rows[0][0] == "Name"
    assert rows[1][0] == "Вадим Курамшин" and rows[2][0].startswith("'=")
    assert isinstance(rows[1][9], datetime)  # real dates, sortable in the spreadsheet


def test_organiser_counts_include_held_and_pending(office):
    body = office.get("/organisers/petitions/vadim-kuramshin/counts.json").json
    assert body["by_country"]["KZ"] == {"confirmed": 2, "pending": 0, "held": 0}
    assert body["by_country"]["RU"] == {"confirmed": 0, "pending": 0, "held": 1}
    assert body["by_country"]["DE"] == {"confirmed": 0, "pending": 1, "held": 0}  # a submission, unconfirmed
    rows = list(csv.reader(io.StringIO(
        office.get("/organisers/petitions/vadim-kuramshin/counts.csv").get_data(as_text=True))))
    assert rows[0] == ["day", "country", "status", "signatures"]
    assert sum(int(r[3]) for r in rows[1:]) == 5
    assert [r[1:3] for r in rows[1:] if r[2] == "pending"] == [["DE", "pending"]]
    assert "Вадим" not in json.dumps(body)


def test_exports_from_the_command_line_are_audited(app, seeded, runner, tmp_path):
    target = tmp_path / "list.xlsx"
    result = runner.invoke(args=["export", "signatures", "vadim-kuramshin", "--format", "xlsx", "--status", "all",
                                 "--country", "kz", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "2 signatures written" in result.output
    assert len(list(load_workbook(target, read_only=True).active.iter_rows())) == 3
    result = runner.invoke(args=["export", "counts", "vadim-kuramshin", "--format", "json"])
    assert json.loads(result.output)["slug"] == "vadim-kuramshin"
    assert runner.invoke(args=["export", "counts", "nope"]).exit_code == 1
    with app.app_context():
        log = db.session.scalars(select(ExportLog).order_by(ExportLog.id)).all()
        assert [(e.kind, e.format, e.rows) for e in log] == [("signatures", "xlsx", 2), ("counts", "json", 5)]
        assert all(e.actor.startswith("command line (") for e in log)
        assert log[0].filters == {"status": "all", "country": "KZ"}


# ---------------------------------------------------------------- care work


def test_close_and_reopen_early(app, office):
    signer = app.test_client()
    assert action(office, "/organisers/petitions/vadim-kuramshin/close").status_code == 303
    assert submit(signer, email="late@example.org").status_code == 410
    assert office.get("/api/petitions/vadim-kuramshin").json["is_open"] is False
    assert action(office, "/organisers/petitions/vadim-kuramshin/reopen").status_code == 303
    assert submit(signer, email="late@example.org").status_code == 303
    assert office.post("/organisers/petitions/vadim-kuramshin/close").status_code == 400  # no CSRF token


def test_find_a_signer_by_email_and_erase(app, office, mailbox):
    """Erasing on a signer's request takes the signature and every submission of that address to the petition,
    with the e-mails queued for them; nobody else's."""
    signer = app.test_client()
    assert submit(signer, email="vadim@example.org", name="Vadim Again").status_code == 303
    run_sender(app, mailbox)
    [repeat] = mailbox.to("vadim@example.org")
    found = action(office, "/organisers/signatures", email="  VADIM@example.org ")
    html = found.get_data(as_text=True)
    assert "1 signature found" in html and "Вадим Курамшин" in html
    with app.app_context():
        signature_id = db.session.scalar(select(Signature.id).where(Signature.email == "vadim@example.org"))
    asked = office.get(f"/organisers/signatures/{signature_id}/erase?back=find")
    assert asked.status_code == 200 and "Вадим Курамшин" in asked.get_data(as_text=True)
    erased = action(office, f"/organisers/signatures/{signature_id}/erase", back="find", confirmed="yes")
    assert erased.status_code == 303 and erased.headers["Location"] == "/organisers/signatures"
    with app.app_context():
        assert db.session.get(Signature, signature_id) is None
        assert db.session.scalars(select(Submission.email)).all() == [PENDING[1]]
        queued = db.session.scalars(select(OutboxMessage)).all()
        assert [(m.kind, m.submission.email) for m in queued] == [("confirm", PENDING[1])]  # only the other's
    assert signer.get(links_in(repeat)["confirm"]).status_code == 404
    assert signer.post(links_in(repeat)["confirm"], headers=SAME_ORIGIN).status_code == 404
    assert "0 signatures found" in action(office, "/organisers/signatures", email="vadim@example.org").get_data(as_text=True)
    assert office.get("/api/petitions/vadim-kuramshin").json["signature_count"] == 2


def test_erasing_a_signature_asks_first(app, office):
    """The button leads to a page that says whose signature goes and what goes with it; the page changes
    nothing, nor does a post that does not come from it; its own post erases."""
    with app.app_context():
        signature_id = db.session.scalar(select(Signature.id).where(Signature.email == "ainur@example.org"))
    asked = office.get(f"/organisers/signatures/{signature_id}/erase")
    html = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Erase this signature?" in html
    assert "Ainur Kurmanov" in html and "Urgent action for Vadim Kuramshin" in html
    assert "town or postcode, comment" in html and "count goes down by one" in html
    assert ">Erase</button>" in html and 'href="/organisers/petitions/vadim-kuramshin">Cancel</a>' in html
    again = action(office, f"/organisers/signatures/{signature_id}/erase")  # not from the page: it asks again
    assert again.status_code == 200 and "Erase this signature?" in again.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Signature, signature_id) is not None
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    hidden = dict(re.findall(r'<input id="(\w+)" name="\w+" type="hidden" value="([^"]*)"', html))
    erased = office.post(f"/organisers/signatures/{signature_id}/erase", data={**hidden, "csrf_token": token})
    assert erased.status_code == 303 and erased.headers["Location"] == "/organisers/petitions/vadim-kuramshin"
    with app.app_context():
        assert db.session.get(Signature, signature_id) is None
    assert office.get(f"/organisers/signatures/{signature_id}/erase").status_code == 404


def test_erasing_unconfirmed_submissions_asks_first_with_the_address_in_the_form(app, office):
    email = PENDING[1]
    asked = action(office, "/organisers/submissions/erase", email=email)
    html = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Erase 1 unconfirmed submission?" in html and PENDING[0] in html
    assert f'<input type="hidden" name="email" value="{email}">' in html  # posted again, never in a URL
    assert 'name="confirmed" type="hidden" value="yes"' in html and ">Cancel</a>" in html
    with app.app_context():
        assert len(db.session.scalars(select(Submission)).all()) == 1
        assert db.session.scalars(select(CompactionDue)).all() == []
    erased = action(office, "/organisers/submissions/erase", email=email, confirmed="yes")
    assert erased.status_code == 303 and email not in erased.headers["Location"]
    with app.app_context():
        assert db.session.scalars(select(Submission)).all() == []
        assert db.session.scalars(select(CompactionDue)).all() != []  # the files are compacted after it


def stats(html: str) -> str:
    return html.split('<ul class="stats">', 1)[1].split("</ul>", 1)[0]


def held_list(html: str) -> str:
    return html.split("<h2>Held for review</h2>", 1)[1].split("<h2>", 1)[0]


def test_review_held_signatures(app, office, mailbox):
    """Held signatures (confirmed by their owners) and pending submissions (confirmed by nobody) are counted
    apart; accepting a held one counts it, with no e-mail to anyone; discarding deletes it."""
    with app.app_context():
        held_id = db.session.scalar(select(Signature.id).where(Signature.status == HELD))
        petition_id = db.session.scalar(select(Petition.id).where(Petition.slug == "vadim-kuramshin"))
        db.session.add(Signature(petition_id=petition_id, name="Another", email="x@example.org",
                                 email_canonical="x@example.org", country="FR", status=HELD, confirmed_at=utcnow()))
        db.session.commit()
        other_id = db.session.scalar(select(Signature.id).where(Signature.email == "x@example.org"))
    page = office.get("/organisers/petitions/vadim-kuramshin").get_data(as_text=True)
    assert "<strong>3</strong> confirmed" in stats(page)
    assert "<strong>2</strong> confirmed and held for review" in stats(page)
    assert "<strong>1</strong> submissions waiting for their owners' confirmation" in stats(page)
    assert "<td>Held Person</td>" in held_list(page) and "<td>Another</td>" in held_list(page)
    assert "Pending Person" not in page and "Вадим Курамшин" not in held_list(page)

    assert action(office, f"/organisers/signatures/{held_id}/accept").status_code == 303
    assert action(office, f"/organisers/signatures/{other_id}/discard").status_code == 303
    with app.app_context():
        assert db.session.get(Signature, held_id).status == CONFIRMED
        assert db.session.scalars(select(OutboxMessage)).all() == []
        assert db.session.get(Signature, other_id) is None
    run_sender(app, mailbox)
    assert [m["To"].addresses[0].addr_spec for m in mailbox.messages] == [PENDING[1]]  # its link; no one else's
    assert office.get("/api/petitions/vadim-kuramshin").json["signature_count"] == 4
    page = office.get("/organisers/petitions/vadim-kuramshin").get_data(as_text=True)
    assert "<strong>0</strong> confirmed and held" in stats(page) and "Nothing is held." in held_list(page)
    assert "<strong>1</strong> submissions waiting" in stats(page)


def test_text_that_begins_like_a_formula_is_signed_as_typed_and_neutralised_in_exports(app, office, mailbox):
    """The sign form takes "+7 727" or "- a dash" as they are; the database keeps them so, and the CSV and Excel
    signer lists lead such cells with an apostrophe, so no spreadsheet program runs them."""
    signer = app.test_client()
    typed = [{"email": "eq@example.org", "name": "=1+2", "postcode": "+7 727", "comment": "- a dash"},
             {"email": "at@example.org", "name": "@home", "postcode": "-5 Degrees St", "comment": "=) solidarity"}]
    for fields in typed:
        sign_and_confirm(app, signer, mailbox, **fields)
    with app.app_context():
        stored = {s.email: (s.name, s.postcode, s.comment) for s in db.session.scalars(select(Signature))}
    for fields in typed:
        assert stored[fields["email"]] == (fields["name"], fields["postcode"], fields["comment"])  # as typed
    csv_rows = rows_of_csv(office.get("/organisers/petitions/vadim-kuramshin/signatures.csv"))
    sheet = load_workbook(io.BytesIO(office.get("/organisers/petitions/vadim-kuramshin/signatures.xlsx").get_data()),
                          read_only=True).active
    xlsx_rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    for exported in (csv_rows, xlsx_rows):
        by_email = {row[1]: row for row in exported[1:]}
        for fields in typed:
            row = by_email[fields["email"]]
            assert (row[0], row[4], row[5]) == tuple("'" + fields[key] for key in ("name", "postcode", "comment"))
        for row in exported[1:]:
            assert not any(isinstance(cell, str) and cell.startswith(("=", "+", "-", "@")) for cell in row), row
    with app.app_context():
        assert {s.email: (s.name, s.postcode, s.comment) for s in db.session.scalars(select(Signature))} == stored


def test_the_delivery_report_names_only_those_who_chose_so(office):
    response = office.get("/organisers/petitions/vadim-kuramshin/report")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "To: The President and the Prosecutor General" in html and "Release Vadim Kuramshin" in html
    assert "<strong>3</strong> people have signed" in html
    assert "Kazakhstan</td><td>2</td>" in html
    assert "Вадим Курамшин" in html  # confirmed and public
    assert "Ainur Kurmanov" not in html  # not public
    assert "Held Person" not in html and "Pending Person" not in html  # public, but not counted
    assert "report.css" in html and "@media print" in (office.get("/static/report.css").get_data(as_text=True))


# ---------------------------------------------------------------- a real spreadsheet program


def libreoffice(source, target_dir, convert_to: str, infilter: str | None = None):
    binary = shutil.which("soffice") or shutil.which("libreoffice")
    if binary is None:
        need("LibreOffice (Debian package libreoffice-calc-nogui)")
    command = [binary, "--headless", f"-env:UserInstallation=file://{target_dir / 'profile'}",
               "--convert-to", convert_to, "--outdir", str(target_dir), str(source)]
    if infilter:
        command[2:2] = [f"--infilter={infilter}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_csv_and_xlsx_open_correctly_in_libreoffice(office, tmp_path):
    """Both downloads go through LibreOffice Calc and come out with every name and row intact.

    LibreOffice 7.4 converting headless does not read the CSV's byte-order mark, so the test states the
    character set, as a person does in Calc's Text Import dialog (Excel reads the mark by itself).
    """
    (tmp_path / "list.csv").write_bytes(office.get(
        "/organisers/petitions/vadim-kuramshin/signatures.csv?status=all").get_data())
    libreoffice(tmp_path / "list.csv", tmp_path / "from-csv", "xlsx", infilter="CSV:44,34,76,1")
    sheet = load_workbook(tmp_path / "from-csv" / "list.xlsx").active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert len(rows) == 1 + len(SIGNERS)
    assert {row[0] for row in rows[1:]} == {"Вадим Курамшин", "'=HYPERLINK(\"http://evil.example\")",
                                            "Ainur Kurmanov", "Held Person"}
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)  # no formula anywhere

    (tmp_path / "list.xlsx").write_bytes(office.get(
        "/organisers/petitions/vadim-kuramshin/signatures.xlsx?status=all").get_data())
    libreoffice(tmp_path / "list.xlsx", tmp_path / "from-xlsx", "csv:Text - txt - csv (StarCalc):44,34,76")
    text = (tmp_path / "from-xlsx" / "list.csv").read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 1 + len(SIGNERS)
    assert rows[1][0] == "Вадим Курамшин" and rows[2][0] == "'=HYPERLINK(\"http://evil.example\")"
    assert rows[1][2] == "Kazakhstan"


@pytest.mark.slow
def test_a_signer_list_streams_in_constant_memory(app):
    """Python's allocations while streaming 20,000 rows stay within a little of those for 2,000."""
    import tracemalloc

    from petition import exports

    with app.app_context():
        small, large = (db.session.scalar(select(Petition).where(Petition.slug == slug))
                        for slug in ("closed-one", "vadim-kuramshin"))
        for petition, count in ((small, 2_000), (large, 20_000)):
            db.session.execute(Signature.__table__.insert(), [
                {"petition_id": petition.id, "name": f"Signer {n} Курамшин", "email": f"s{n}@example.org",
                 "email_canonical": f"s{n}@example.org", "country": "KZ", "postcode": "", "comment": "",
                 "public": False, "updates": False, "status": CONFIRMED, "created_at": utcnow(),
                 "confirmed_at": utcnow(), "nonce": f"{petition.slug[:8]}{n}"} for n in range(count)])
        db.session.commit()

        def peak(petition: Petition) -> tuple[int, int]:
            log_id = exports.begin("test", petition, "signatures", "csv", {})
            tracemalloc.start()
            size = sum(len(chunk) for chunk in exports.csv_chunks(petition, exports.Filters(), log_id))
            top = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            return size, top

        (small_size, small_peak), (large_size, large_peak) = peak(small), peak(large)
    assert large_size > 9 * small_size  # ten times the rows really went out
    assert large_peak < small_peak * 1.5 + 256 * 1024, (small_peak, large_peak)


def test_find_shows_and_erases_unconfirmed_submissions(app, office, mailbox):
    """Someone who signed and never confirmed asks what we hold: their submissions are found by address (the
    address posted, never in a URL) and erased on every petition, with their e-mails; nobody else's."""
    name, email, _ = PENDING
    signer = app.test_client()
    assert submit(signer, email=email.capitalize(), name="Sent Twice").status_code == 303
    run_sender(app, mailbox)
    found = action(office, "/organisers/signatures", email=email).get_data(as_text=True)
    assert "0 signatures found" in found and "2 unconfirmed submissions found" in found
    assert name in found and "Sent Twice" in found
    asked = action(office, "/organisers/submissions/erase", email=f" {email} ")
    assert asked.status_code == 200 and "Sent Twice" in asked.get_data(as_text=True)
    erased = action(office, "/organisers/submissions/erase", email=f" {email} ", confirmed="yes")
    assert erased.status_code == 303 and erased.headers["Location"] == "/organisers/signatures"
    assert "pending" not in erased.headers["Location"]  # the address never goes into a URL
    with app.app_context():
        assert db.session.scalars(select(Submission)).all() == []
        assert db.session.scalars(select(OutboxMessage).where(OutboxMessage.submission_id.is_not(None))).all() == []
        assert db.session.scalar(select(db.func.count()).select_from(Signature)) == len(SIGNERS)  # untouched
    assert signer.get(links_in(mailbox.to(email.capitalize())[0])["confirm"]).status_code == 404
    assert "2 unconfirmed submissions erased" in office.get("/organisers/signatures").get_data(as_text=True)
    refused = office.post("/organisers/submissions/erase", data={"email": email})  # no CSRF token
    assert refused.status_code == 400
