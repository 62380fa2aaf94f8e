"""The public count API: confirmed signatures only, no personal data, cacheable."""

from __future__ import annotations

import csv
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from petition import counts
from petition.extensions import db
from petition.models import CONFIRMED, HELD, Petition, Signature

PERSONAL = ("@example.org", "Signer", "Secret comment", "SW1")


def add_signatures(app, rows):
    """rows: (country, status, confirmed day or None)"""
    with app.app_context():
        petition = db.session.scalar(db.select(Petition).where(Petition.slug == "vadim-kuramshin"))
        for number, (country, status, day) in enumerate(rows):
            db.session.add(Signature(
                petition_id=petition.id, name=f"Signer {number}", email=f"s{number}@example.org",
                email_canonical=f"s{number}@example.org", country=country, postcode="SW1",
                comment="Secret comment", status=status,
                confirmed_at=datetime.fromisoformat(day) if day else None))
        db.session.commit()


ROWS = [
    ("KZ", CONFIRMED, "2026-11-02T10:00"), ("KZ", CONFIRMED, "2026-11-02T23:59"),
    ("GB", CONFIRMED, "2026-11-03T00:00"), ("DE", HELD, None), ("RU", HELD, None),
]


def test_one_petition_counts_confirmed_signatures_only(app, client):
    add_signatures(app, ROWS)
    response = client.get("/api/petitions/vadim-kuramshin")
    assert response.status_code == 200
    body = response.json
    assert body["slug"] == "vadim-kuramshin" and body["title"] == "Urgent action for Vadim Kuramshin"
    assert body["goal"] == 10000 and body["is_open"] is True and body["closes_at"] == "2027-06-30"
    assert body["signature_count"] == 3
    assert body["by_country"] == {"GB": 1, "KZ": 2}
    assert not any(word in response.get_data(as_text=True) for word in PERSONAL)


def test_the_list_holds_every_petition(app, client):
    add_signatures(app, ROWS)
    body = client.get("/api/petitions").json
    by_slug = {p["slug"]: p for p in body["petitions"]}
    assert set(by_slug) == {"vadim-kuramshin", "closed-one", "future-one"}
    assert by_slug["vadim-kuramshin"]["signature_count"] == 3
    assert by_slug["closed-one"]["is_open"] is False and by_slug["future-one"]["is_open"] is False


def test_responses_are_cacheable_and_conditional(client):
    response = client.get("/api/petitions/vadim-kuramshin")
    cache_control = response.headers["Cache-Control"]
    for part in ("public", "max-age=10", "stale-while-revalidate=", "stale-if-error="):
        assert part in cache_control
    etag = response.headers["ETag"]
    again = client.get("/api/petitions/vadim-kuramshin", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""


def test_counts_by_day_and_country_as_json_and_csv(app, client):
    add_signatures(app, ROWS)
    body = client.get("/api/petitions/vadim-kuramshin/counts.json").json
    assert body["signature_count"] == 3
    assert body["by_day"] == {"2026-11-02": 2, "2026-11-03": 1}
    assert body["by_country"] == {"GB": 1, "KZ": 2}
    assert body["by_day_and_country"] == [
        {"day": "2026-11-02", "country": "KZ", "signatures": 2},
        {"day": "2026-11-03", "country": "GB", "signatures": 1},
    ]
    response = client.get("/api/petitions/vadim-kuramshin/counts.csv")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows == [["day", "country", "signatures"], ["2026-11-02", "KZ", "2"], ["2026-11-03", "GB", "1"]]
    assert not any(word in response.get_data(as_text=True) for word in PERSONAL)


def test_an_unknown_slug_is_a_json_404(client):
    for path in ("/api/petitions/nobody", "/api/petitions/nobody/counts.csv", "/api/nothing"):
        response = client.get(path)
        assert response.status_code == 404 and response.is_json
        assert response.json["status"] == 404


def test_counts_are_cached_briefly_per_process(app, client):
    app.config["COUNT_CACHE_SECONDS"] = 60
    assert client.get("/api/petitions/vadim-kuramshin").json["signature_count"] == 0
    add_signatures(app, ROWS[:1])
    assert client.get("/api/petitions/vadim-kuramshin").json["signature_count"] == 0  # cached
    with app.app_context():
        counts.forget()
    assert client.get("/api/petitions/vadim-kuramshin").json["signature_count"] == 1


def test_stale_counts_are_counted_again_by_one_thread_while_others_answer(app, monkeypatch):
    """At the moment the cache goes stale under load, one thread counts; the rest keep the last numbers."""
    app.config["COUNT_CACHE_SECONDS"] = 60
    add_signatures(app, [ROWS[0], ("GB", HELD, None)])
    with app.app_context():
        petition_id = db.session.scalar(db.select(Petition.id).where(Petition.slug == "vadim-kuramshin"))
        assert counts.confirmed_counts(petition_id).total == 1
        numbers = app.extensions["petition.counts"][petition_id][1]
        app.extensions["petition.counts"][petition_id] = (0.0, numbers)  # stale now
        db.session.execute(db.update(Signature).values(status=CONFIRMED))  # one more confirmed
        db.session.commit()
    original, entered, release = counts._count, threading.Event(), threading.Event()
    calls: list[int] = []

    def slow_count(pid):
        calls.append(pid)
        entered.set()
        release.wait(10)
        return original(pid)

    monkeypatch.setattr(counts, "_count", slow_count)

    def read() -> int:
        with app.app_context():
            return counts.confirmed_counts(petition_id).total

    with ThreadPoolExecutor(max_workers=6) as pool:
        counting = pool.submit(read)
        assert entered.wait(10)
        others = [pool.submit(read) for _ in range(5)]
        assert [f.result(timeout=10) for f in others] == [1] * 5  # the last numbers, at once
        release.set()
        assert counting.result(timeout=10) == 2
    assert calls == [petition_id]  # counted once
    with app.app_context():
        assert counts.confirmed_counts(petition_id).total == 2  # and fresh for everyone after


def test_a_cached_count_is_answered_before_flask_with_the_same_bytes_and_headers(app, client):
    app.config["COUNT_CACHE_SECONDS"] = 60
    add_signatures(app, ROWS[:1])
    first = client.get("/api/petitions/vadim-kuramshin")
    assert first.status_code == 200 and first.json["signature_count"] == 1

    def gone(**kwargs):
        raise AssertionError("the view ran again")

    app.view_functions["api.petition"] = gone  # from here on only the kept response can answer
    again = client.get("/api/petitions/vadim-kuramshin")
    assert again.status_code == 200 and again.get_data() == first.get_data()
    assert sorted(again.headers.items()) == sorted(first.headers.items())
    assert "Set-Cookie" not in again.headers and again.headers["Access-Control-Allow-Origin"] == "*"
    head = client.head("/api/petitions/vadim-kuramshin")
    assert head.status_code == 200 and head.get_data() == b"" and head.headers["ETag"] == first.headers["ETag"]
    with app.app_context():
        counts.forget()  # an organiser's change: nothing kept survives it
    failed = client.get("/api/petitions/vadim-kuramshin")
    assert failed.status_code == 500 and failed.json["error"] == "Internal Server Error"


def test_conditional_requests_and_uncached_answers_take_the_full_path(app, client):
    app.config["COUNT_CACHE_SECONDS"] = 60
    first = client.get("/api/petitions/vadim-kuramshin")
    revalidated = client.get("/api/petitions/vadim-kuramshin", headers={"If-None-Match": first.headers["ETag"]})
    assert revalidated.status_code == 304 and revalidated.get_data() == b""
    assert client.get("/api/petitions/nobody").status_code == 404
    app.config["COUNT_CACHE_SECONDS"] = 0
    with app.app_context():
        counts.forget()
    client.get("/api/petitions/vadim-kuramshin")
    assert app.extensions.get("petition.api-responses") == {}  # with caching off, nothing is kept
