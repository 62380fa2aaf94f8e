"""Floods and bots: soft limit to held, hard limit to 429, the honeypot, shared limits in Redis, headers."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import limits
import pytest
from sqlalchemy import func, select

from petition import abuse, create_app
from petition.extensions import db
from petition.models import HELD, PENDING, OutboxMessage, Signature

from conftest import VALID, csrf_token, free_port, need, submit

SIGN = "/petitions/vadim-kuramshin/sign"


def statuses(app) -> list[str]:
    with app.app_context():
        return db.session.scalars(select(Signature.status).order_by(Signature.id)).all()


def test_past_the_soft_limit_signatures_are_held_quietly(app, client):
    app.config.update(SIGN_SOFT_LIMIT="3 per hour")
    pages = []
    for n in range(5):
        response = submit(client, email=f"neighbour{n}@example.org")
        assert response.status_code == 303
        pages.append(client.get(response.headers["Location"]).get_data(as_text=True))
    assert statuses(app) == [PENDING] * 3 + [HELD] * 2
    assert len(set(pages)) == 1  # the held senders saw exactly what the others saw
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 3  # no mail for held ones
    assert client.get("/api/petitions/vadim-kuramshin").json["signature_count"] == 0  # held never count


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
    assert statuses(app) == [PENDING, PENDING]


def test_past_the_hard_limit_a_clear_429_with_retry_after(app, client):
    app.config.update(SIGN_SOFT_LIMIT="2 per hour", SIGN_HARD_LIMIT="4 per hour")
    codes = [submit(client, email=f"flood{n}@example.org").status_code for n in range(6)]
    assert codes == [303, 303, 303, 303, 429, 429]
    refused = submit(client, email="late@example.org")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many signatures have come from your network" in html
    assert statuses(app) == [PENDING, PENDING, HELD, HELD]  # nothing stored past the hard limit
    assert client.get(SIGN).status_code == 200  # reading is never limited


def test_memory_limits_hold_when_many_threads_hit_them_at_once(monkeypatch):
    """limits' own memory storage starts a timer thread after almost every hit, and two threads could start
    one timer at once ("threads can only be started once"): a 500 for a signer now and then under load.
    The storage ``memory://`` now gives counts exactly and starts no thread."""
    from limits.storage import storage_from_string
    from limits.strategies import FixedWindowRateLimiter

    from petition.extensions import ThreadSafeMemoryStorage

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


def test_the_honeypot_holds_a_bots_post_and_is_invisible(app, client):
    html = client.get(SIGN).get_data(as_text=True)
    trap = re.search(r'<div class="hp" aria-hidden="true">(.*?)</div>', html, re.DOTALL).group(1)
    assert 'tabindex="-1"' in trap and 'autocomplete="off"' in trap and f'name="{abuse.HONEYPOT}"' in trap
    assert submit(client, website="http://spam.example").status_code == 303
    assert statuses(app) == [HELD]


def test_addresses_are_stored_only_as_keyed_hashes(app, client):
    client.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    submit(client)
    with app.app_context():
        [stored] = db.session.scalars(select(Signature.ip_hash)).all()
        assert stored and "203.0.113.7" not in stored and re.fullmatch(r"[0-9a-f]{32}", stored)
        assert stored == abuse.ip_hash("203.0.113.7")
        app.config["SECRET_KEY"] = "another key"
        assert abuse.ip_hash("203.0.113.7") != stored  # keyed: useless without the secret


def test_security_headers_on_every_service_page(app, client):
    for path in (SIGN, "/petitions/vadim-kuramshin/thanks", "/organisers/login", "/nowhere",
                 "/petitions/vadim-kuramshin/confirm/x"):
        headers = client.get(path).headers
        policy = headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in policy and "script-src 'self'" in policy, path
        assert "frame-ancestors 'none'" in policy, path
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "same-origin"
    html = client.get(SIGN).get_data(as_text=True)
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
    page = client.get(SIGN)
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "Cache-Control"):
        assert len(page.headers.getlist(name)) == 1, name
    assert page.headers["Cache-Control"] == "no-store"
    failed = client.get("/crash")
    assert failed.status_code == 500 and failed.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in failed.headers["Content-Security-Policy"]


@pytest.fixture
def redis_url(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        need("Redis (Debian package redis-server)")
    port = free_port()
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                               "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_limits_are_shared_between_processes_through_redis(app, redis_url):
    """Two app instances (as two gunicorn workers or hosts would be) count against one limit."""
    second = create_app({**app.config, "RATELIMIT_STORAGE_URI": redis_url})
    first = create_app({**app.config, "RATELIMIT_STORAGE_URI": redis_url})
    for instance in (first, second):
        instance.config.update(SIGN_SOFT_LIMIT="10 per hour", SIGN_HARD_LIMIT="3 per hour")
    one, two = first.test_client(), second.test_client()
    codes = []
    for n, client in enumerate((one, two, one, two)):
        token = csrf_token(client, SIGN)
        codes.append(client.post(SIGN, data={**VALID, "email": f"r{n}@example.org", "csrf_token": token}).status_code)
    assert codes == [303, 303, 303, 429]
    import redis

    assert redis.Redis.from_url(redis_url).keys("*")  # the counts really live in Redis
