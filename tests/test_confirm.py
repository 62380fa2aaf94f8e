"""Confirmation and 'manage my signature' links: signed, expiring, naming one submission or one signature,
and only a same-site POST changes anything."""

from __future__ import annotations

import base64
import html
import re
from datetime import timedelta

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from petition import catalogue, tokens
from petition.extensions import db
from petition.models import CONFIRMED, OutboxMessage, Petition, Signature, Submission, utcnow

from conftest import SAME_ORIGIN, VALID, links_in, run_sender, sign_and_confirm, submit

COUNT = "/api/petitions/vadim-kuramshin"
CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
STORED = re.compile(r"<dt>([^<]+)</dt><dd[^>]*>(.*?)</dd>", re.DOTALL)


def rows(app, model) -> list:
    with app.app_context():
        found = db.session.scalars(select(model).order_by(model.id)).all()
        db.session.expunge_all()
        return found


def outbox(app) -> list[tuple[int | None, int | None, str]]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(select(
            OutboxMessage.submission_id, OutboxMessage.signature_id, OutboxMessage.kind).order_by(OutboxMessage.id))]


def mailed_link(app, client, mailbox, **fields) -> str:
    """Sign, let the sender mail the submission's e-mail, and return its confirmation link."""
    address = fields.get("email", VALID["email"])
    before = len(mailbox.to(address))
    assert submit(client, **fields).status_code == 303
    run_sender(app, mailbox)
    [message] = mailbox.to(address)[before:]
    return links_in(message)["confirm"]


def link(app, row: Submission | Signature, purpose: str, slug: str = "vadim-kuramshin") -> str:
    with app.app_context():
        return f"/petitions/{slug}/{purpose}/{tokens.make(row, purpose)}"


def shown(page) -> dict[str, str]:
    """The answers a confirm or manage page lists, as a visitor reads them."""
    return {term: html.unescape(value) for term, value in STORED.findall(page.get_data(as_text=True))}


def count(client) -> int:
    return client.get(COUNT).json["signature_count"]


ANSWERS = {"name": "Ainur Kurmanova", "email": "ainur@example.org", "country": "DE", "postcode": "Berlin 10115",
           "comment": "Solidarity & freedom > fear", "public": "y"}
ANSWERS_SHOWN = {
    "Name": "Ainur Kurmanova",
    "E-mail address": "ainur@example.org",
    "Country": "Germany",
    "Town or postcode": "Berlin 10115",
    "Comment": "Solidarity & freedom > fear",
    "Name shown publicly": "Yes",
    "Keep me informed": "No",
}


def test_the_page_shows_exactly_the_submissions_answers_and_changes_nothing(app, client, mailbox):
    """Scanners fetch links, sometimes several times: a GET shows the answers and a button, nothing more."""
    path = mailed_link(app, client, mailbox, **ANSWERS)
    before = (rows(app, Submission), outbox(app))
    for _ in range(3):
        page = client.get(path)
        assert page.status_code == 200
        assert "Set-Cookie" not in page.headers and page.headers["Cache-Control"] == "no-store"
        assert shown(page) == ANSWERS_SHOWN
        assert "Confirm my signature</button>" in page.get_data(as_text=True)
    assert rows(app, Signature) == []
    after = (rows(app, Submission), outbox(app))
    assert [(s.id, s.nonce, s.name) for s in after[0]] == [(s.id, s.nonce, s.name) for s in before[0]]
    assert after[1] == before[1]  # no e-mail queued either
    assert count(client) == 0


def test_each_submission_has_its_own_page_with_its_own_answers(app, client, mailbox):
    first = mailed_link(app, client, mailbox, **ANSWERS)
    second = mailed_link(app, client, mailbox, **{**ANSWERS, "name": "Someone Else", "country": "RU",
                                                  "postcode": "", "comment": "", "public": None, "updates": "y"})
    assert shown(client.get(first)) == ANSWERS_SHOWN
    assert shown(client.get(second)) == {**ANSWERS_SHOWN, "Name": "Someone Else", "Country": "Russian Federation",
                                         "Town or postcode": "(not given)", "Comment": "(none)",
                                         "Name shown publicly": "No", "Keep me informed": "Yes"}


def test_the_post_makes_exactly_those_answers_the_signature(app, client, mailbox):
    path = mailed_link(app, client, mailbox, **ANSWERS)
    [submission] = rows(app, Submission)
    response = client.post(path, headers=SAME_ORIGIN)
    assert response.status_code == 303 and response.headers["Location"].endswith("/petitions/vadim-kuramshin/confirmed")
    assert "Set-Cookie" not in response.headers
    [signature] = rows(app, Signature)
    assert (signature.name, signature.email, signature.email_canonical, signature.country, signature.postcode,
            signature.comment, signature.public, signature.updates) == (
        "Ainur Kurmanova", "ainur@example.org", "ainur@example.org", "DE", "Berlin 10115",
        "Solidarity & freedom > fear", True, False)
    assert signature.status == CONFIRMED and signature.confirmed_at is not None
    assert signature.created_at == submission.created_at  # signed when the answers were sent
    assert rows(app, Submission) == []
    assert outbox(app)[-1] == (None, signature.id, "counted")
    assert count(client) == 1 and client.get(COUNT).json["by_country"] == {"DE": 1}

    assert run_sender(app, mailbox) == (1, 0)
    receipt = mailbox.to("ainur@example.org")[-1]
    assert receipt["Subject"].startswith("Your signature is confirmed")
    assert "manage" in links_in(receipt) and "confirm" not in links_in(receipt)
    assert shown(client.get(links_in(receipt)["manage"]))["Name"] == "Ainur Kurmanova"


def test_a_second_press_finds_the_link_used_and_changes_nothing(app, client, mailbox):
    path = mailed_link(app, client, mailbox)
    assert client.post(path, headers=SAME_ORIGIN).status_code == 303
    [before] = rows(app, Signature)
    again = client.post(path, headers=SAME_ORIGIN)
    assert again.status_code == 404
    assert "This link does not work" in again.get_data(as_text=True)
    [after] = rows(app, Signature)
    assert (after.id, after.confirmed_at) == (before.id, before.confirmed_at)
    assert [kind for _, _, kind in outbox(app)].count("counted") == 1  # one receipt, not two


def test_a_second_submission_confirmed_replaces_the_answers_and_counts_once(app, client, mailbox):
    sign_and_confirm(app, client, mailbox, name="First Answers", country="KZ", comment="First")
    [first] = rows(app, Signature)
    path = mailed_link(app, client, mailbox, name="Second Answers", country="GB", postcode="Leeds",
                       comment="Changed my mind", public="y", updates="y")
    assert mailbox.to(VALID["email"])[-1]["Subject"].startswith("You have already signed")
    page = client.get(path)
    assert shown(page)["Name"] == "Second Answers"
    assert "Replace my signature&#39;s details</button>" in page.get_data(as_text=True)
    assert rows(app, Signature)[0].name == "First Answers"  # nothing replaced by looking
    assert client.post(path, headers=SAME_ORIGIN).status_code == 303
    [signature] = rows(app, Signature)
    assert signature.id == first.id and signature.confirmed_at == first.confirmed_at
    assert (signature.name, signature.country, signature.postcode, signature.comment, signature.public,
            signature.updates, signature.status) == (
        "Second Answers", "GB", "Leeds", "Changed my mind", True, True, CONFIRMED)
    api = client.get(COUNT).json
    assert api["signature_count"] == 1 and api["by_country"] == {"GB": 1}
    assert rows(app, Submission) == []


def test_confirming_one_submission_discards_the_addresss_other_submissions(app, client, mailbox):
    first = mailed_link(app, client, mailbox, name="One")
    second = mailed_link(app, client, mailbox, name="Two")
    third = mailed_link(app, client, mailbox, name="Three")
    other = mailed_link(app, client, mailbox, email="neighbour@example.org")
    assert client.post(second, headers=SAME_ORIGIN).status_code == 303
    assert [s.email for s in rows(app, Submission)] == ["neighbour@example.org"]  # another mailbox's stays
    for gone in (first, third):
        response = client.get(gone)
        assert response.status_code == 404 and "This link does not work" in response.get_data(as_text=True)
        assert client.post(gone, headers=SAME_ORIGIN).status_code == 404
    assert [s.name for s in rows(app, Signature)] == ["Two"]
    assert client.get(other).status_code == 200


def close_yesterday(petition: Petition) -> None:
    petition.closes_on = utcnow().date() - timedelta(days=1)


def close_early(petition: Petition) -> None:
    petition.closed_early_at = utcnow()


@pytest.mark.parametrize("close", [close_yesterday, close_early])
def test_a_petition_closed_after_the_submission_takes_no_confirmation(app, client, mailbox, close):
    path = mailed_link(app, client, mailbox)
    with app.app_context():
        close(db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin")))
        db.session.commit()
        catalogue.forget()
    for response in (client.get(path), client.post(path, headers=SAME_ORIGIN)):
        assert response.status_code == 410
        assert "This petition is closed" in response.get_data(as_text=True)
        assert "Set-Cookie" not in response.headers
    assert rows(app, Signature) == []
    assert [kind for _, _, kind in outbox(app)] == ["confirm"]  # no receipt queued
    assert count(client) == 0


def test_a_tampered_or_foreign_token_is_refused(app, client, mailbox):
    path = mailed_link(app, client, mailbox)
    [submission] = rows(app, Submission)
    sign_and_confirm(app, client, mailbox, email="other@example.org")
    [signature] = rows(app, Signature)
    refused = [
        path[:-3] + "abc",
        link(app, signature, tokens.MANAGE).replace("/manage/", "/confirm/"),  # a link works for its purpose only
        link(app, submission, tokens.CONFIRM, slug="closed-one"),  # and for its own petition
    ]
    with app.app_context():
        forged = URLSafeTimedSerializer("another key", salt="petition-confirm").dumps([submission.id, submission.nonce])
        wrong_nonce = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="petition-confirm").dumps(
            [submission.id, "0" * 16])
    refused += [f"/petitions/vadim-kuramshin/confirm/{forged}", f"/petitions/vadim-kuramshin/confirm/{wrong_nonce}",
                link(app, submission, tokens.CONFIRM).replace("/confirm/", "/manage/")]
    for bad in refused:
        for response in (client.get(bad), client.post(bad, headers=SAME_ORIGIN)):
            assert response.status_code == 404, bad
            assert "This link does not work" in response.get_data(as_text=True)
    assert [s.id for s in rows(app, Submission)] == [submission.id]  # still waiting for its own link
    assert [s.email for s in rows(app, Signature)] == ["other@example.org"]
    assert client.get(path).status_code == 200


def test_an_expired_link_says_so_and_confirms_nothing(app, client, mailbox, monkeypatch):
    path = mailed_link(app, client, mailbox)
    monkeypatch.setattr(tokens, "max_age", lambda purpose: -1)
    for response in (client.get(path), client.post(path, headers=SAME_ORIGIN)):
        assert response.status_code == 410
        assert "This link has expired" in response.get_data(as_text=True)
    assert rows(app, Signature) == []


def test_manage_shows_what_is_stored_and_withdraw_deletes_the_signature_and_the_submissions(app, client, mailbox):
    manage = sign_and_confirm(app, client, mailbox, comment="Free him & all > now", updates="y")
    pending = mailed_link(app, client, mailbox, name="A Later Submission")
    tagged = mailed_link(app, client, mailbox, email="supporter+news@example.org")  # its own signer here
    page = client.get(manage)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in page.headers
    stored = shown(page)
    assert {key: stored[key] for key in ("Name", "E-mail address", "Country", "Town or postcode", "Comment",
                                         "Name shown publicly", "Keep me informed")} == {
        "Name": "Вадим Курамшин", "E-mail address": "supporter@example.org", "Country": "Kazakhstan",
        "Town or postcode": "Astana", "Comment": "Free him & all > now", "Name shown publicly": "No",
        "Keep me informed": "Yes"}
    assert "A Later Submission" not in page.get_data(as_text=True)  # what is stored, not what is waiting

    response = client.post(manage, headers=SAME_ORIGIN)
    assert response.status_code == 303 and response.headers["Location"].endswith("/withdrawn")
    assert "Set-Cookie" not in response.headers
    assert rows(app, Signature) == []
    assert [s.email for s in rows(app, Submission)] == ["supporter+news@example.org"]
    assert [kind for _, _, kind in outbox(app)] == ["confirm"]  # the tagged address's; the rest went too
    assert client.get(manage).status_code == 404  # the link dies with the signature
    assert client.get(pending).status_code == 404  # and so do its mailbox's submissions
    assert client.get(tagged).status_code == 200
    assert count(client) == 0

    assert submit(client).status_code == 303  # the signer may sign again, as a new signer
    run_sender(app, mailbox)
    assert mailbox.to(VALID["email"])[-1]["Subject"].startswith("Please confirm your signature")


@pytest.mark.parametrize("purpose", [tokens.CONFIRM, tokens.MANAGE])
def test_a_link_never_reaches_a_later_row_that_reuses_the_id(app, client, mailbox, purpose):
    model = Submission if purpose == tokens.CONFIRM else Signature
    if purpose == tokens.CONFIRM:
        old_link = mailed_link(app, client, mailbox)
    else:
        old_link = sign_and_confirm(app, client, mailbox)
    [old] = rows(app, model)
    assert client.post(old_link, headers=SAME_ORIGIN).status_code == 303  # confirmed, or withdrawn: row gone
    newcomer = mailed_link(app, client, mailbox, email="newcomer@example.org")
    if purpose == tokens.MANAGE:
        client.post(newcomer, headers=SAME_ORIGIN)
    with app.app_context():  # make the newcomer's row take the old id, as SQLite may
        db.session.execute(db.delete(OutboxMessage))
        db.session.execute(db.update(model).where(model.email == "newcomer@example.org").values(id=old.id))
        db.session.commit()
    for response in (client.get(old_link), client.post(old_link, headers=SAME_ORIGIN)):
        assert response.status_code == 404
        assert "newcomer@example.org" not in response.get_data(as_text=True)
    assert len(rows(app, model)) == 1


@pytest.mark.parametrize("purpose", [tokens.CONFIRM, tokens.MANAGE])
def test_a_cross_site_post_to_a_link_is_refused_and_changes_nothing(app, client, mailbox, purpose):
    if purpose == tokens.CONFIRM:
        path = mailed_link(app, client, mailbox)
        expected = (0, 1)  # signatures, submissions
    else:
        path = sign_and_confirm(app, client, mailbox)
        expected = (1, 0)
    queued = outbox(app)
    for headers in (CROSS_SITE, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        response = client.post(path, headers=headers)
        assert response.status_code == 403
        assert "only be sent from this site" in response.get_data(as_text=True)
        assert "Set-Cookie" not in response.headers
        assert (len(rows(app, Signature)), len(rows(app, Submission))) == expected
        assert outbox(app) == queued
    assert client.post(path, headers=SAME_ORIGIN).status_code == 303  # the link itself was good


def test_no_page_behind_a_link_sets_a_cookie(app, client, mailbox, monkeypatch):
    """A signer's browser is given nothing to keep, whatever page a link leads to."""
    confirm = mailed_link(app, client, mailbox)
    answers = [client.get(confirm), client.post(confirm, headers=CROSS_SITE), client.post(confirm, headers=SAME_ORIGIN)]
    answers.append(client.get(answers[-1].headers["Location"]))  # the confirmed page
    run_sender(app, mailbox)
    manage = links_in(mailbox.messages[-1])["manage"]
    answers += [client.get(manage), client.post(manage, headers=CROSS_SITE), client.post(manage, headers=SAME_ORIGIN)]
    answers.append(client.get(answers[-1].headers["Location"]))  # the withdrawn page
    answers += [client.get(confirm), client.get(manage), client.get(confirm[:-3] + "abc")]
    expiring = mailed_link(app, client, mailbox)
    monkeypatch.setattr(tokens, "max_age", lambda purpose: -1)
    answers.append(client.get(expiring))
    assert [a.status_code for a in answers] == [200, 403, 303, 200, 200, 403, 303, 200, 404, 404, 404, 410]
    assert [a.headers.get("Set-Cookie") for a in answers] == [None] * len(answers)


@pytest.mark.parametrize("purpose", [tokens.CONFIRM, tokens.MANAGE])
def test_garbage_tokens_never_cause_a_server_error(client, purpose):
    for garbage in ("", "x", "a.b.c", "%00", "' OR 1=1 --", "ü" * 300, "e30.e30.e30"):
        for response in (client.get(f"/petitions/vadim-kuramshin/{purpose}/{garbage}"),
                         client.post(f"/petitions/vadim-kuramshin/{purpose}/{garbage}", headers=SAME_ORIGIN)):
            assert response.status_code in (404, 405, 308), (garbage, response.status_code)


def test_a_links_token_is_opaque_random_and_unrelated_to_the_row(app, client, mailbox):
    """No id, no date, no structure: 128 random bits, different for every row and every purpose."""
    paths = [mailed_link(app, client, mailbox, email=f"opaque{n}@example.org") for n in range(3)]
    sign_and_confirm(app, client, mailbox, email="opaque-signed@example.org")
    manage = links_in(mailbox.to("opaque-signed@example.org")[-1])["manage"]
    found = [path.rsplit("/", 1)[1] for path in paths] + [manage.rsplit("/", 1)[1]]
    for token in found:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", token), token  # base64 of 16 random bytes, nothing signed
    assert len(set(found)) == len(found)
    # The token is the row's random nonce and nothing more: there is nothing else in it to decode.
    nonces = {row.nonce for row in rows(app, Submission) + rows(app, Signature)}
    assert set(found) <= nonces
    assert all(len(base64.urlsafe_b64decode(token + "==")) == 16 for token in found)
    assert client.get(paths[0]).status_code == 200


def test_a_link_sent_before_tokens_were_opaque_still_works_until_it_expires(app, client, mailbox):
    mailed_link(app, client, mailbox)
    [submission] = rows(app, Submission)
    with app.app_context():
        old = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="petition-confirm").dumps(
            [submission.id, submission.nonce])
    path = f"/petitions/vadim-kuramshin/confirm/{old}"
    assert client.get(path).status_code == 200
    assert client.post(path, headers=SAME_ORIGIN).status_code == 303
    assert count(client) == 1


def test_the_confirmed_page_names_the_target_mid_sentence_in_lower_case(client):
    page = client.get("/petitions/vadim-kuramshin/confirmed").get_data(as_text=True)
    assert "the pressure on the President and the Prosecutor General" in page
    assert "pressure on The President" not in page
