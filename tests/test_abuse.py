"""Floods and bots: held submissions (still mailed), the e-mail cap per mailbox, the hard limit's 429, the
honeypot, limits shared in Redis, keyed address hashes, headers."""

from __future__ import annotations

import os
import re
import stat
import sys
import threading
import time
from pathlib import Path

import limits
import pytest
from sqlalchemy import select

from petition import abuse, accounts, create_app, hashing
from petition.emails import PLUS_TAG_DOMAINS
from petition.extensions import db
from petition.models import CONFIRMED, HELD, Signature, Submission

from conftest import SAME_ORIGIN, answers_in, csrf_token, links_in, run_sender, submit

SIGN = "/petitions/vadim-kuramshin/sign"
COUNT = "/api/petitions/vadim-kuramshin"
HONEYPOT = re.compile(r'<div class="hp" aria-hidden="true">(.*?)</div>', re.DOTALL)
PASSWORD = "correct horse battery staple"


def at(app, address: str):
    """A browser at one client address."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def rows(app, model) -> list:
    with app.app_context():
        found = db.session.scalars(select(model).order_by(model.id)).all()
        db.session.expunge_all()
        return found


def confirm(client, message):
    """The owner presses the button behind the link in ``message``."""
    return client.post(links_in(message)["confirm"], headers=SAME_ORIGIN)


def organiser(app):
    """A browser logged in as an organiser."""
    with app.app_context():
        accounts.add("organiser@example.org", PASSWORD)
    office = app.test_client()
    token = csrf_token(office, "/organisers/login")
    assert office.post("/organisers/login", data={"csrf_token": token, "email": "organiser@example.org",
                                                  "password": PASSWORD}).status_code == 303
    return office


def burst(app) -> int:
    """How many submissions one address may send at once before the soft limit holds the rest."""
    return min(item.amount for item in limits.parse_many(app.config["SIGN_SOFT_LIMIT"]))


def test_past_the_soft_limit_submissions_are_held_quietly_and_still_mailed(app, client, mailbox):
    app.config.update(SIGN_SOFT_LIMIT="3 per hour")
    answers = [submit(client, email=f"neighbour{n}@example.org") for n in range(5)]
    seen = {(r.status_code, r.headers["Location"], r.get_data(), tuple(sorted(r.headers.keys()))) for r in answers}
    assert len(seen) == 1 and answers[0].status_code == 303  # the held saw exactly what the others saw
    assert [s.held for s in rows(app, Submission)] == [False] * 3 + [True] * 2
    assert run_sender(app, mailbox) == (5, 0)
    for n in range(5):
        [message] = mailbox.to(f"neighbour{n}@example.org")  # holding never silences a mailbox
        assert confirm(client, message).status_code == 303
    assert [s.status for s in rows(app, Signature)] == [CONFIRMED] * 3 + [HELD] * 2
    assert client.get(COUNT).json["signature_count"] == 3  # held ones count once an organiser accepts them


@pytest.mark.parametrize("soft_limit", ["3 per minute; 100 per hour", "100 per minute; 3 per hour"])
def test_either_window_of_the_soft_limit_holds(app, client, soft_limit):
    """A burst window and a sustained one: past either, a submission is held."""
    app.config.update(SIGN_SOFT_LIMIT=soft_limit)
    for n in range(4):
        assert submit(client, email=f"window{n}@example.org").status_code == 303
    assert [s.held for s in rows(app, Submission)] == [False, False, False, True]


def test_the_soft_limit_is_per_petition(app, client):
    app.config.update(SIGN_SOFT_LIMIT="1 per hour")
    with app.app_context():
        from petition import catalogue

        (Path(app.config["PETITIONS_DIR"]) / "second.md").write_text(
            "---\nslug: second\ntitle: Second\ntarget: T\nsummary: S\ngoal: 5\nopens: 2020-01-01\n"
            "closes: 2999-01-01\n---\nText\n", encoding="utf-8")
        catalogue.sync(app.config["PETITIONS_DIR"])
    submit(client)
    submit(client, slug="second")
    assert [s.held for s in rows(app, Submission)] == [False, False]


def test_a_held_squatter_can_neither_silence_nor_replace_the_owners_answers(app, mailbox):
    """Someone floods from one address, then types a victim's address with answers of their own, past the soft
    limit: those submissions are held and mailed. The victim, signing later from elsewhere with their own
    answers, still gets a link to exactly those, and confirming it stores the victim's answers, counted."""
    attacker, victim = at(app, "198.51.100.66"), at(app, "203.0.113.5")
    for n in range(burst(app)):
        assert submit(attacker, email=f"decoy{n}@example.org").status_code == 303
    for _ in range(app.config["MAILS_PER_MAILBOX"] - 1):  # within the mailbox's cap: the cap has its own test
        assert submit(attacker, email="victim@example.org", name="Chosen By Attacker", country="RU",
                      postcode="Nowhere", comment="Not my words", public="y", updates="y").status_code == 303
    assert [s.held for s in rows(app, Submission) if s.email == "victim@example.org"] == [True, True]
    run_sender(app, mailbox)
    squatted = mailbox.to("victim@example.org")
    assert len(squatted) == 2 and all("Chosen By Attacker" in answers_in(m) for m in squatted)

    assert submit(victim, email="victim@example.org", name="The Real Owner", country="KZ", postcode="Almaty",
                  comment="My own words").status_code == 303
    run_sender(app, mailbox)
    assert len(mailbox.to("victim@example.org")) == 3
    own = mailbox.to("victim@example.org")[-1]
    assert "The Real Owner" in answers_in(own) and "Chosen By Attacker" not in answers_in(own)
    page = victim.get(links_in(own)["confirm"]).get_data(as_text=True)
    for shown in ("<dd>The Real Owner</dd>", "<dd>victim@example.org</dd>", "<dd>Kazakhstan</dd>", "<dd>Almaty</dd>",
                  "My own words", "<dt>Name shown publicly</dt><dd>No</dd>", "<dt>Keep me informed</dt><dd>No</dd>"):
        assert shown in page, shown
    assert "Chosen By Attacker" not in page and "Not my words" not in page

    assert confirm(victim, own).status_code == 303
    [signature] = rows(app, Signature)
    assert (signature.name, signature.country, signature.postcode, signature.comment, signature.public,
            signature.updates, signature.status) == ("The Real Owner", "KZ", "Almaty", "My own words", False, False,
                                                     CONFIRMED)
    with app.app_context():
        assert signature.ip_hash == abuse.ip_hash("203.0.113.5")
    assert not [s for s in rows(app, Submission) if s.email == "victim@example.org"]  # the squatter's are gone
    assert [victim.get(links_in(m)["confirm"]).status_code for m in squatted] == [404, 404]
    assert victim.get(COUNT).json["signature_count"] == 1


def test_people_behind_one_address_are_all_mailed_and_big_providers_count_at_once(app, mailbox):
    """Twelve people sign within a minute from one address (an office, a campus, a carrier's NAT). Each gets
    their e-mail; past the burst, those at a big provider count once confirmed, the rest wait for an
    organiser, who can accept them."""
    assert "gmail.com" in app.config["SIGN_ALLOWED_DOMAINS"] and "example.org" not in app.config["SIGN_ALLOWED_DOMAINS"]
    first = burst(app)
    assert first < 12
    network = at(app, "192.0.2.10")
    people = [f"colleague{n}@{'gmail.com' if n in (first + 1, first + 4) else 'example.org'}" for n in range(12)]
    for n, email in enumerate(people):
        assert submit(network, email=email, name=f"Colleague {n}").status_code == 303
    assert run_sender(app, mailbox) == (12, 0)
    for email in people:
        [message] = mailbox.to(email)
        assert confirm(network, message).status_code == 303
    expected = {email: CONFIRMED if n < first or email.endswith("@gmail.com") else HELD
                for n, email in enumerate(people)}
    assert {s.email: s.status for s in rows(app, Signature)} == expected
    counted = list(expected.values()).count(CONFIRMED)
    assert network.get(COUNT).json["signature_count"] == counted == first + 2

    run_sender(app, mailbox)  # the receipts of the confirmed and the held alike
    office = organiser(app)
    page = office.get("/organisers/petitions/vadim-kuramshin").get_data(as_text=True)
    held_list = page.split("<h2>Held for review</h2>", 1)[1].split("</table>", 1)[0]
    for n, email in enumerate(people):
        assert (f"<td>Colleague {n}</td>" in held_list) == (expected[email] == HELD), email
    held = next(s for s in rows(app, Signature) if s.status == HELD)
    token = csrf_token(office, "/organisers/")
    assert office.post(f"/organisers/signatures/{held.id}/accept", data={"csrf_token": token}).status_code == 303
    assert network.get(COUNT).json["signature_count"] == counted + 1
    assert run_sender(app, mailbox) == (0, 0)  # accepting sends nobody anything


def test_plus_tags_share_one_mailboxs_e_mail_cap(app, client, mailbox):
    """target+1@ … target+10@ at a domain that may deliver tags to different people are ten signers, but one
    inbox to flood: together they get no more e-mails than the cap allows. Other mailboxes are untouched."""
    assert "example.org" not in PLUS_TAG_DOMAINS
    cap = app.config["MAILS_PER_MAILBOX"]
    tagged = [f"target+{n}@example.org" for n in range(1, 11)]
    others = ["other@example.org", "target2@example.org", "target@example.net"]
    for email in tagged[:5] + others + tagged[5:]:
        assert submit(client, email=email).status_code == 303
    run_sender(app, mailbox)
    assert [m["To"].addresses[0].addr_spec for m in mailbox.messages if m["To"].addresses[0].addr_spec in tagged] \
        == tagged[:cap]  # the first ones, oldest first
    assert all(len(mailbox.to(email)) == 1 for email in others)
    submissions = rows(app, Submission)
    assert len(submissions) == len(tagged) + len(others)  # kept, if not all mailed
    assert len({s.email_canonical for s in submissions if s.email in tagged}) == 10  # ten signers all the same


def test_a_stranger_cannot_use_up_the_owners_link(app, mailbox):
    """Someone posts the owner's address until their share of the cap is gone, from an address the soft limit
    does not hold. The owner, signing from their own network, still gets a link for their own answers."""
    stranger, owner = at(app, "203.0.113.9"), at(app, "198.51.100.7")
    for n in range(app.config["MAILS_PER_MAILBOX"] + 2):
        assert submit(stranger, email="owner@example.org", name=f"Chosen By A Stranger {n}").status_code == 303
    run_sender(app, mailbox)
    assert len(mailbox.to("owner@example.org")) == app.config["MAILS_PER_MAILBOX"]
    assert submit(owner, email="owner@example.org", name="The Owner Herself").status_code == 303
    run_sender(app, mailbox)
    mine = mailbox.to("owner@example.org")[-1]
    assert "The Owner Herself" in answers_in(mine)
    assert confirm(owner, mine).status_code == 303
    assert [s.name for s in rows(app, Signature)] == ["The Owner Herself"]


def test_all_senders_together_stay_under_the_mailboxs_ceiling(app, mailbox):
    ceiling = app.config["MAILS_PER_MAILBOX_IN_ALL"]
    for n in range(ceiling + 3):  # a different network every time
        assert submit(at(app, f"192.0.2.{n + 1}"), email="inbox@example.org").status_code == 303
    run_sender(app, mailbox)
    assert len(mailbox.to("inbox@example.org")) == ceiling
    assert len(rows(app, Submission)) == ceiling + 3  # every submission kept, if not mailed


def test_past_the_hard_limit_a_clear_429_with_retry_after(app, client, mailbox):
    app.config.update(SIGN_SOFT_LIMIT="2 per hour", SIGN_HARD_LIMIT="4 per hour")
    codes = [submit(client, email=f"flood{n}@example.org").status_code for n in range(6)]
    assert codes == [303, 303, 303, 303, 429, 429]
    refused = submit(client, email="late@example.org")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 3600
    assert "Too many signatures have come from your network" in html
    assert "Set-Cookie" not in refused.headers
    assert [s.held for s in rows(app, Submission)] == [False, False, True, True]  # nothing stored past it
    assert run_sender(app, mailbox) == (4, 0)
    assert confirm(client, mailbox.to("flood0@example.org")[0]).status_code == 303  # confirming is never limited


def test_memory_limits_hold_when_many_threads_hit_them_at_once(monkeypatch):
    """limits' own memory storage starts a timer thread after almost every hit, and two threads could start
    one timer at once ("threads can only be started once"): a 500 for a signer now and then under load.
    The storage ``memory://`` now gives counts exactly and starts no thread."""
    from limits.storage import storage_from_string
    from limits.strategies import FixedWindowRateLimiter

    from petition.ratelimits import ThreadSafeMemoryStorage

    storage = storage_from_string("memory://")
    assert isinstance(storage, ThreadSafeMemoryStorage)
    storage.SWEEP_SECONDS = 0  # sweep on every hit: the most chances for threads to meet in it
    started: list[threading.Thread] = []
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda self: started.append(self) or real_start(self))
    limiter = FixedWindowRateLimiter(storage)
    item = limits.parse("1000000 per hour")
    failures: list[BaseException] = []
    hooks = threading.excepthook, sys.unraisablehook
    threading.excepthook = sys.unraisablehook = lambda args: failures.append(args.exc_value)
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()
        for n in range(100):
            try:
                limiter.hit(item, "sign-soft", str(n))
            except Exception as error:
                failures.append(error)

    try:
        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        threading.excepthook, sys.unraisablehook = hooks
    assert failures == []
    assert started == threads  # the hammering threads, and not one timer
    assert [limiter.get_window_stats(item, "sign-soft", str(n)).remaining for n in (0, 99)] == [1000000 - 8] * 2


def test_memory_limits_forget_expired_senders():
    """Without a timer the storage still sweeps: expired counters leave memory on a later hit."""
    from limits.storage import storage_from_string
    from limits.strategies import FixedWindowRateLimiter

    storage = storage_from_string("memory://")
    storage.SWEEP_SECONDS = 0.2
    limiter = FixedWindowRateLimiter(storage)
    short, long = limits.parse("5 per 1 second"), limits.parse("5 per 1 hour")
    limiter.hit(short, "sign-soft", "198.51.100.1")
    limiter.hit(long, "sign-soft", "198.51.100.2")
    assert len(storage.storage) == 2
    time.sleep(2.1)  # past the one-second window, whichever second it began in
    limiter.hit(long, "sign-soft", "198.51.100.3")
    assert len(storage.storage) == 2 and not any("198.51.100.1" in key for key in storage.expirations)


def test_the_honeypot_holds_a_bots_post_yet_mails_it_and_is_invisible(app, client, mailbox):
    for html in (client.get("/petitions/vadim-kuramshin/live/form").get_data(as_text=True),  # the site's sign page
                 submit(client, email="bad").get_data(as_text=True)):  # the form the service sends back
        trap = HONEYPOT.search(html).group(1)
        assert 'tabindex="-1"' in trap and 'autocomplete="off"' in trap and f'name="{abuse.HONEYPOT}"' in trap
    assert submit(client, website="http://spam.example").status_code == 303
    [submission] = rows(app, Submission)
    assert submission.held
    assert run_sender(app, mailbox) == (1, 0)  # a person whose browser filled it in still gets the link
    assert confirm(client, mailbox.messages[0]).status_code == 303
    assert [s.status for s in rows(app, Signature)] == [HELD]
    assert client.get(COUNT).json["signature_count"] == 0


def test_addresses_are_stored_only_as_keyed_hashes(app, mailbox):
    client = at(app, "203.0.113.7")
    submit(client)
    run_sender(app, mailbox)
    confirm(client, mailbox.messages[0])
    submit(client, email="second@example.org", website="x")
    run_sender(app, mailbox)
    stored = rows(app, Submission) + rows(app, Signature)
    assert [type(row).__name__ for row in stored] == ["Submission", "Signature"]
    with app.app_context():
        for row in stored:
            assert row.ip_hash == abuse.ip_hash("203.0.113.7") and re.fullmatch(r"[0-9a-f]{32}", row.ip_hash)
        for table in db.metadata.sorted_tables:  # nowhere in the database, in any column
            for values in db.session.execute(select(table)):
                assert not any("203.0.113.7" in str(value) for value in values), table.name
        app.config["SECRET_KEY"] = "another key"
        assert abuse.ip_hash("203.0.113.7") == stored[0].ip_hash  # not derived from the secret key
        key_file = Path(app.instance_path) / hashing.KEY_FILE
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert not hashing.rotate(max_age_days=1)  # young: kept
        week_ago = time.time() - 7 * 86400
        os.utime(key_file, (week_ago, week_ago))
        assert hashing.rotate(max_age_days=7)
        assert abuse.ip_hash("203.0.113.7") != stored[0].ip_hash  # keyed: useless once the key is replaced


def test_security_headers_on_every_service_page(app, client):
    answers = [client.get(path) for path in (
        SIGN, "/petitions/vadim-kuramshin/confirmed", "/petitions/vadim-kuramshin/withdrawn", "/organisers/login",
        "/nowhere", "/petitions/vadim-kuramshin/confirm/x", "/petitions/vadim-kuramshin/manage/x")]
    refused = submit(client, email="bad")
    for response in [*answers, refused]:
        headers = response.headers
        policy = headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in policy and "script-src 'self'" in policy, response.request.path
        assert "frame-ancestors 'none'" in policy, response.request.path
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "same-origin"
    html = refused.get_data(as_text=True)
    assert 'name="email"' in html
    assert "<script" not in html and " style=" not in html  # nothing inline for a policy to allow


def test_security_headers_are_added_once_and_never_over_a_views_own(app, client):
    from flask import Response

    @app.get("/own-policy")
    def own_policy():
        return Response("{}", mimetype="application/json", headers={"Content-Security-Policy": "sandbox"})

    @app.get("/crash")
    def crash():
        raise RuntimeError("boom")

    own = client.get("/own-policy")
    assert own.headers.getlist("Content-Security-Policy") == ["sandbox"]  # the view's, and only it
    assert own.headers["X-Content-Type-Options"] == "nosniff"
    assert "Cache-Control" not in own.headers  # no-store is for pages
    api = client.get("/api/petitions/vadim-kuramshin")
    assert "public" in api.headers["Cache-Control"] and "no-store" not in api.headers["Cache-Control"]
    page = client.get("/petitions/vadim-kuramshin/confirmed")
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "Cache-Control"):
        assert len(page.headers.getlist(name)) == 1, name
    assert page.headers["Cache-Control"] == "no-store"
    failed = client.get("/crash")
    assert failed.status_code == 500 and failed.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in failed.headers["Content-Security-Policy"]


def test_limits_are_shared_between_processes_through_redis(app, redis_url):
    """Two app instances (as two gunicorn workers or hosts would be) count against one soft and one hard limit."""
    second = create_app({**app.config, "RATELIMIT_STORAGE_URI": redis_url})
    first = create_app({**app.config, "RATELIMIT_STORAGE_URI": redis_url})
    for instance in (first, second):
        instance.config.update(SIGN_SOFT_LIMIT="2 per hour", SIGN_HARD_LIMIT="3 per hour")
    one, two = first.test_client(), second.test_client()
    codes = [submit(client, email=f"r{n}@example.org").status_code for n, client in enumerate((one, two, one, two))]
    assert codes == [303, 303, 303, 429]
    assert [s.held for s in rows(app, Submission)] == [False, False, True]
    import redis

    keys = redis.Redis.from_url(redis_url).keys("*")  # the counts really live in Redis
    assert any(b"sign-soft" in key for key in keys) and any(b"sign-hard" in key for key in keys)
