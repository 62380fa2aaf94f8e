"""The sign form and its POST: validation with hostile input, the intake of submissions, what a signer
confirms, cross-site posts, closed petitions."""

from __future__ import annotations

import re
import sqlite3

import pytest
from sqlalchemy import func, select

from petition.extensions import db
from petition.models import CONFIRMED, OutboxMessage, Signature, Submission

from conftest import SAME_ORIGIN, VALID, links_in, run_sender, submit

SIGN = "/petitions/vadim-kuramshin/sign"
COUNT = "/api/petitions/vadim-kuramshin"


def rows(app, model) -> list:
    with app.app_context():
        found = db.session.scalars(select(model).order_by(model.id)).all()
        db.session.expunge_all()
        return found


def outbox(app) -> list[tuple[int | None, str]]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            select(OutboxMessage.submission_id, OutboxMessage.kind).order_by(OutboxMessage.id))]


def test_the_form_has_every_field_with_a_real_label(client):
    html = client.get("/petitions/vadim-kuramshin/live/form").get_data(as_text=True)  # the site's sign page part
    assert 'action="/petitions/vadim-kuramshin/sign"' in html
    for name in ("name", "email", "country", "postcode", "comment", "public", "updates"):
        assert f'name="{name}"' in html, name
        assert f'<label for="{name}">' in html, name
    assert "csrf_token" not in html  # nothing per visitor: the same page for everyone, from the site
    assert '<option value="KZ">Kazakhstan</option>' in html
    assert re.search(r'<input[^>]*name="public"(?![^>]*checked)', html)  # off by default
    assert re.search(r'<input[^>]*name="updates"(?![^>]*checked)', html)
    assert 'href="/privacy/"' in html
    assert "<script" not in html


def test_a_valid_post_appends_one_submission_and_nothing_else(app, client):
    response = submit(client, email="  Supporter@Example.ORG ", public="y", postcode="+7 727")
    assert response.status_code == 303
    assert response.headers["Location"] == "/petitions/vadim-kuramshin/thanks/"  # a page of the site
    assert "Set-Cookie" not in response.headers
    [submission] = rows(app, Submission)
    assert submission.name == "Вадим Курамшин"
    assert submission.email == "Supporter@example.org"
    assert submission.email_canonical == "supporter@example.org"
    assert submission.country == "KZ" and submission.postcode == "+7 727"
    assert submission.public is True and submission.updates is False and submission.held is False
    assert submission.decided_at is None and submission.mailed_at is None  # the sender decides, later
    assert rows(app, Signature) == [] and outbox(app) == []


def test_the_sender_mails_each_submission_its_own_link(app, client, mailbox):
    submit(client)
    assert run_sender(app, mailbox) == (1, 0)
    [submission] = rows(app, Submission)
    assert outbox(app) == [(submission.id, "confirm")]
    [message] = mailbox.messages
    assert message["To"].addresses[0].addr_spec == "supporter@example.org"
    assert set(links_in(message)) == {"confirm"}  # nothing to manage before the owner confirms


def test_the_first_submitter_cannot_choose_what_the_owner_confirms(app, client, mailbox):
    """Someone types the owner's address first, with a name and choices of their own. The owner signs later
    with their own answers: each submission has its own link and page, and the owner's confirms the owner's."""
    submit(client, name="Typed By Someone Else", comment="Not mine", public="y", updates="y", country="RU")
    submit(client, name="The Real Owner", comment="", country="KZ")
    run_sender(app, mailbox)
    first, second = mailbox.to("supporter@example.org")
    assert "Typed By Someone Else" in first.get_body(("plain",)).get_content()
    assert "The Real Owner" in second.get_body(("plain",)).get_content()
    owners_page = client.get(links_in(second)["confirm"]).get_data(as_text=True)
    assert "The Real Owner" in owners_page and "Typed By Someone Else" not in owners_page
    assert "<dt>Name shown publicly</dt><dd>No</dd>" in owners_page

    assert client.post(links_in(second)["confirm"], headers=SAME_ORIGIN).status_code == 303
    [signature] = rows(app, Signature)
    assert (signature.name, signature.country, signature.public, signature.updates) == (
        "The Real Owner", "KZ", False, False)
    assert rows(app, Submission) == []  # the other submission is discarded with the confirmation
    assert client.get(links_in(first)["confirm"]).status_code == 404  # and its link leads nowhere
    assert client.get(COUNT).json["signature_count"] == 1


def test_a_repeat_signer_gets_the_same_answer_and_only_the_mailbox_learns(app, client, mailbox):
    new = submit(client, email="fresh@example.org")
    submit(client)
    run_sender(app, mailbox)
    assert client.post(links_in(mailbox.to(VALID["email"])[0])["confirm"], headers=SAME_ORIGIN).status_code == 303
    repeat = submit(client, name="Someone Else")
    assert (new.status_code, new.headers["Location"], new.get_data()) == (
        repeat.status_code, repeat.headers["Location"], repeat.get_data())
    assert sorted(new.headers.keys()) == sorted(repeat.headers.keys())
    run_sender(app, mailbox)
    assert [kind for _, kind in outbox(app)][-1] == "already_signed"
    assert rows(app, Signature)[0].name == "Вадим Курамшин"  # unchanged until the owner confirms the new one


def test_fragments_answer_alike_for_new_and_repeat(app, client, mailbox):
    submit(client)
    run_sender(app, mailbox)
    client.post(links_in(mailbox.messages[0])["confirm"], headers=SAME_ORIGIN)
    fragment = {**SAME_ORIGIN, "X-Petition-Fragment": "1"}
    new = submit(client, headers=fragment, email="new@example.org")
    repeat = submit(client, headers=fragment)
    assert new.status_code == repeat.status_code == 200
    assert new.get_data() == repeat.get_data() and "Check your e-mail" in new.get_data(as_text=True)


def test_the_same_address_may_sign_another_petition(app, client, petitions_dir, mailbox):
    with app.app_context():
        from petition import catalogue

        (petitions_dir / "second.md").write_text(
            "---\nslug: second\ntitle: Second\ntarget: T\nsummary: S\ngoal: 5\nopens: 2020-01-01\n"
            "closes: 2999-01-01\n---\nText\n", encoding="utf-8")
        catalogue.sync(petitions_dir)
    assert submit(client).status_code == 303
    assert submit(client, slug="second").status_code == 303
    run_sender(app, mailbox)
    for message in mailbox.messages:
        assert client.post(links_in(message)["confirm"], headers=SAME_ORIGIN).status_code == 303
    assert len(rows(app, Signature)) == 2


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another origin
    {"Origin": "https://evil.example"},  # an older browser without Sec-Fetch-Site
    {"Origin": "null"},  # a sandboxed page
])
def test_a_cross_site_post_is_refused_and_leaves_nothing(app, client, mailbox, headers):
    response = submit(client, headers=headers)
    assert response.status_code == 403
    assert "only be sent from this site" in response.get_data(as_text=True)
    assert "Set-Cookie" not in response.headers
    assert rows(app, Submission) == []
    assert run_sender(app, mailbox) == (0, 0) and mailbox.messages == []


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "same-origin"},
    {"Sec-Fetch-Site": "none"},  # typed in the address bar: no page made the browser send it
    {"Origin": "http://localhost"},  # same host, a browser without Sec-Fetch-Site
    {},  # not a browser at all: no page can have sent it on a visitor's behalf
])
def test_our_own_posts_are_taken(app, client, headers):
    assert submit(client, headers=headers).status_code == 303
    assert len(rows(app, Submission)) == 1


HOSTILE = [
    ({"name": ""}, "Enter your full name."),
    ({"name": "   "}, "Enter your full name."),
    ({"name": "x" * 101}, "at most 100 characters"),
    ({"name": "Vadim\x00Kuramshin"}, "control character (U+0000)"),
    ({"name": "Vadim\nKuramshin"}, "control character (U+000A)"),
    ({"name": "\u202eniseht"}, "control character (U+202E)"),
    ({"email": ""}, "Enter your e-mail address."),
    ({"email": "not-an-address"}, "Enter a valid e-mail address"),
    ({"email": "a@" + "b" * 300 + ".org"}, "at most 254 characters"),
    ({"country": ""}, "Choose your country."),
    ({"country": "XX"}, "Choose your country from the list."),
    ({"country": "<script>"}, "Choose your country from the list."),
    ({"postcode": "9" * 41}, "at most 40 characters"),
    ({"comment": "c" * 501}, "501 characters long; at most 500"),
    ({"comment": "tab\tok but bell\x07 not"}, "control character (U+0007)"),
    ({"name": "<b>Bold</b>"}, "cannot contain HTML tags"),
    ({"comment": "<script>alert(1)</script>"}, "cannot contain HTML tags"),
    ({"postcode": "<img src=x onerror=alert(1)>"}, "cannot contain HTML tags"),
]


@pytest.mark.parametrize("fields, message", HOSTILE)
def test_each_rule_refuses_hostile_input_with_its_own_message(app, client, fields, message):
    response = submit(client, **fields)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in html
    assert 'role="alert"' in html and "<title>Error: " in html
    assert "Set-Cookie" not in response.headers
    assert rows(app, Submission) == [] and outbox(app) == []


def test_entered_values_are_kept_and_escaped_when_the_form_is_refused(client):
    response = submit(client, name="<script>alert(1)</script>", email="bad", comment="=1+2")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "=1+2</textarea>" in html
    assert 'aria-invalid="true"' in html and 'aria-describedby="email-hint email-error"' in html


@pytest.mark.parametrize("fields", [
    {"postcode": "+7 727"},  # a phone-style town code
    {"comment": "- and one more thing"},
    {"comment": "=) solidarity"},
    {"name": "@lexander"},
    {"comment": "+1 from our union branch"},
])
def test_text_that_merely_begins_like_a_formula_is_ordinary_text(app, client, fields):
    assert submit(client, **fields).status_code == 303
    [submission] = rows(app, Submission)
    for name, value in fields.items():
        assert getattr(submission, name) == value  # stored as typed; the exports neutralise it


def test_ordinary_punctuation_is_welcome(app, client):
    assert submit(client, name="O'Brien-Smith", comment="Solidarity! 2 + 2 = 4; <3 from the union").status_code == 303
    assert rows(app, Submission)[0].comment == "Solidarity! 2 + 2 = 4; <3 from the union"


@pytest.mark.parametrize("name", [b"Vad\xffim", b"Vad%FFim", b"%C3%28"])
def test_invalid_utf8_is_refused_with_a_clear_message(app, client, name):
    body = b"email=a%40example.org&country=KZ&name=" + name
    response = client.post(SIGN, data=body, content_type="application/x-www-form-urlencoded", headers=SAME_ORIGIN)
    assert response.status_code == 400
    assert "not valid UTF-8 text" in response.get_data(as_text=True)
    assert rows(app, Submission) == []


def test_an_oversized_body_is_refused_before_it_is_read(app, client):
    response = submit(client, comment="x" * 10_000_000)
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)
    assert rows(app, Submission) == []


@pytest.mark.parametrize("slug, status, words", [
    ("closed-one", 410, "This petition is closed"),
    ("future-one", 409, "This petition is not open yet"),
])
def test_a_petition_outside_its_dates_refuses_signatures_and_shows_its_count(app, client, slug, status, words):
    posted = submit(client, slug=slug)
    assert posted.status_code == status
    html = posted.get_data(as_text=True)
    assert words in html and "0</strong>" in html and 'name="email"' not in html
    assert rows(app, Submission) == []


def test_an_unknown_petition_is_a_clear_404(client):
    response = submit(client, slug="nobody")
    assert response.status_code == 404
    assert "There is no petition at this address." in response.get_data(as_text=True)


def test_the_service_takes_only_posts_at_the_form_address(client):
    """The sign page itself is the site's: the bare service answers only the form's POST there."""
    for method in (client.get, client.put):
        response = method(SIGN)
        assert response.status_code == 405
        assert "POST" in response.headers["Allow"] and "GET" not in response.headers["Allow"]


def test_refusals_are_never_cached_and_carry_security_headers(client):
    response = submit(client, email="bad")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_a_post_does_the_same_database_work_whoever_sends_it(app, client, mailbox):
    """The POST of a new signer, a repeat of a confirmed one, a held one (the honeypot) and one over the
    e-mail cap run the same statements: one INSERT into submission, nothing read, nothing else written.
    What differs is decided later, by the sender."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    submit(client, email="confirmed@example.org")
    for _ in range(app.config["MAILS_PER_MAILBOX"]):
        submit(client, email="capped@example.org")
    run_sender(app, mailbox)
    client.post(links_in(mailbox.to("confirmed@example.org")[0])["confirm"], headers=SAME_ORIGIN)
    run_sender(app, mailbox)

    def statements_of(**fields) -> list[str]:
        seen: list[str] = []
        traced: list[sqlite3.Connection] = []

        def record(conn, cursor, statement, *args):
            seen.append(re.sub(r"\s+", " ", statement).strip().upper())

        def trace(dbapi_connection, connection_record, proxy):  # SQLite's own statements, BEGIN included
            if isinstance(dbapi_connection, sqlite3.Connection):
                dbapi_connection.set_trace_callback(lambda s: seen.append("SQLITE " + s.split()[0].upper()))
                traced.append(dbapi_connection)

        event.listen(Engine, "before_cursor_execute", record)
        event.listen(Engine, "checkout", trace)
        try:
            assert submit(client, **fields).status_code == 303
        finally:
            event.remove(Engine, "before_cursor_execute", record)
            event.remove(Engine, "checkout", trace)
            for connection in traced:
                connection.set_trace_callback(None)
        return seen

    new = statements_of(email="brand-new@example.org")
    writes = [s for s in new if s.startswith(("INSERT", "UPDATE", "DELETE"))]
    assert len(writes) == 1 and writes[0].startswith("INSERT INTO SUBMISSION"), new
    assert not [s for s in new if "SIGNATURE" in s or "OUTBOX" in s], new  # nothing about who has signed
    assert statements_of(email="confirmed@example.org") == new
    assert statements_of(email="held@example.org", website="http://spam.example") == new
    assert statements_of(email="capped@example.org") == new
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Signature)
                                 .where(Signature.status == CONFIRMED)) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_comment_over_the_limit_is_refused_with_its_length(client):
    answer = submit(client, comment="x" * 501)
    assert answer.status_code == 422
    assert "Your comment is 501 characters long; at most 500 are allowed." in answer.get_data(as_text=True)
