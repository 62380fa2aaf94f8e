"""The shared rate-limit store (Redis) failing is a degraded mode, not an outage: killed and restarted for real."""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest
import redis
from sqlalchemy import func, select

from petition import accounts, create_app, hashing
from petition.extensions import db
from petition.models import Submission

from conftest import submit
from test_organisers import PASSWORD, log_in

ORGANISER = "organiser@example.org"
UNREACHABLE = "rate-limit store unreachable"
BACK = "rate-limit store reachable again"


@pytest.fixture
def served(app, redis_server):
    """The service counting its limits in a real Redis, trying it again soon after a failure."""
    served = create_app({**app.config, "RATELIMIT_STORAGE_URI": redis_server.url, "RATELIMIT_RETRY_SECONDS": 0.3,
                         "SIGN_HARD_LIMIT": "3 per hour", "SIGN_SOFT_LIMIT": "100 per hour"})
    with served.app_context():
        accounts.add(ORGANISER, PASSWORD)
    return served


def sign_from(app, address: str, email: str) -> int:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return submit(client, email=email).status_code


def stored(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Submission))


def keys_for(redis_url: str, app, address: str) -> list[bytes]:
    with app.app_context():
        client = hashing.keyed(address)
    return [key for key in redis.Redis.from_url(redis_url).keys("*") if client.encode() in key]


def messages(caplog, text: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if text in record.getMessage()]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_signing_and_login_go_on_while_redis_is_down_and_share_limits_again_once_it_is_back(
        served, redis_server, caplog):
    caplog.set_level(logging.WARNING, logger="petition.ratelimits")
    assert sign_from(served, "198.51.100.1", "first@example.org") == 303
    assert keys_for(redis_server.url, served, "198.51.100.1")  # counted in Redis

    redis_server.stop()
    during = [sign_from(served, f"198.51.100.{n}", f"during{n}@example.org") for n in range(2, 12)]
    assert during == [303] * 10
    # The hard limit still holds, counted in this process's memory.
    assert [sign_from(served, "203.0.113.9", f"flood{n}@example.org") for n in range(4)] == [303, 303, 303, 429]
    office = served.test_client()
    assert log_in(office, ORGANISER).status_code == 303
    assert office.get("/organisers/").status_code == 200
    assert len(messages(caplog, UNREACHABLE)) == 1  # one warning for the outage, not one per request
    assert "ConnectionError" in messages(caplog, UNREACHABLE)[0]

    redis_server.start()
    time.sleep(0.4)  # past RATELIMIT_RETRY_SECONDS: the store is tried again
    assert sign_from(served, "198.51.100.20", "after@example.org") == 303
    assert keys_for(redis_server.url, served, "198.51.100.20")  # counted in Redis once more
    assert len(messages(caplog, BACK)) == 1
    assert stored(served) == 1 + 10 + 3 + 1  # every accepted submission kept


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_redis_killed_and_restarted_while_people_sign_costs_no_signature(served, redis_server):
    codes: list[int] = []
    done = threading.Event()

    def signer(worker: int) -> None:
        n = 0
        while not done.is_set():
            n += 1
            codes.append(sign_from(served, f"10.{worker}.{n // 250}.{n % 250}", f"w{worker}n{n}@example.org"))

    threads = [threading.Thread(target=signer, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        redis_server.stop()
        time.sleep(1.0)
        redis_server.start()
        time.sleep(1.0)
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=30)
    assert len(codes) > 20 and set(codes) == {303}
    assert stored(served) == len(codes)


def test_the_shipped_settings_count_limits_together_for_gunicorns_workers():
    from conftest import ROOT

    unit = (ROOT / "deploy" / "systemd" / "petition-web.service").read_text(encoding="utf-8")
    workers = int(re.search(r"--workers (\d+)", unit).group(1))
    settings = dict(line.split("=", 1) for line in
                    (ROOT / "deploy" / "petition.env.example").read_text(encoding="utf-8").splitlines()
                    if line and not line.startswith("#"))
    assert workers > 1 and settings["PETITION_RATELIMIT_STORAGE_URL"].startswith("redis://")
