"""Timing equality of the sign form's POST: does the time of an answer tell who is signing?

One sequential client posts, in a random interleaving, submissions of five classes: ``new`` (a fresh
address), ``repeat`` (an address whose signature is confirmed), ``held`` (the honeypot filled),
``held-limit`` (from a sender address past the soft limit) and ``over-cap`` (an address its sender has
already submitted past the e-mail cap, so that it is mailed no more). Each POST goes on a fresh connection
to nginx, from a loopback source address of its own (127.0.0.0/8 is all local) unless its class needs one
sender, so that the per-address limits see separate senders; the clock runs from sending the request to
reading the whole answer, the connect left out. Each class is compared with ``new`` by the Mann-Whitney U
test; |z| < 2 is the target.
"""

from __future__ import annotations

import gc
import http.client
import math
import random
import statistics
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from datetime import timedelta

CLASSES = ("new", "repeat", "held", "held-limit", "over-cap")
GUNICORN_WORKERS = 3  # each counts the limits in its own memory: a flood must pass them in every worker


def mann_whitney_z(sample: Sequence[float], reference: Sequence[float]) -> float:
    """z of the two-sided Mann-Whitney U test of ``sample`` against ``reference``, by scipy (the normal
    approximation with the tie correction, no continuity correction), signed: positive when ``sample`` tends
    to be the larger."""
    from scipy.stats import mannwhitneyu, norm

    if not sample or not reference:
        return 0.0
    result = mannwhitneyu(sample, reference, alternative="two-sided", method="asymptotic", use_continuity=False)
    if math.isnan(result.pvalue):  # every value the same: nothing to tell apart
        return 0.0
    return math.copysign(float(norm.isf(result.pvalue / 2)), result.statistic - len(sample) * len(reference) / 2)


def _addresses() -> Iterator[str]:
    """Loopback source addresses, each used once."""
    for a in range(20, 250):
        for b in range(1, 255):
            for c in range(1, 255):
                yield f"127.{a}.{b}.{c}"


class Client:
    def __init__(self, port: int, slug: str) -> None:
        self.port, self.slug = port, slug
        self.path = f"/petitions/{slug}/sign"
        self.thanks = f"/petitions/{slug}/thanks/"
        self.headers = {"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin",
                        "Origin": f"http://127.0.0.1:{port}"}
        self.sources = _addresses()

    def post(self, email: str, honeypot: str = "", source: str | None = None) -> float:
        """One POST on a fresh connection; the seconds from sending it to reading all of the answer."""
        body = urllib.parse.urlencode({
            "name": "Timing Test Signer", "email": email, "country": "KZ", "postcode": "050000",
            "comment": "Free Vadim Kuramshin", "public": "y", "updates": "y", "website": honeypot})
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10,
                                                source_address=(source or next(self.sources), 0))
        try:
            connection.connect()
            started = time.perf_counter()
            connection.request("POST", self.path, body=body, headers=self.headers)
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
        finally:
            connection.close()
        location = response.headers.get("Location", "")
        if response.status != 303 or not location.endswith(self.thanks):
            raise RuntimeError(f"POST for {email} answered {response.status} {location!r}")
        return elapsed


def _tag(label: str, kind: str) -> str:
    """The start of a class's addresses; none is the start of another's (LIKE finds them by it)."""
    return f"{label}-{kind.replace('-', '')}-"


def _count(engine, sql: str, **params) -> int:
    from sqlalchemy import text

    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar()


def _wait_until_decided(engine, seconds: float = 90) -> bool:
    """The mail sender decides submissions after their POST; wait (bounded) until it has decided all."""
    deadline = time.monotonic() + seconds
    while _count(engine, "SELECT count(*) FROM submission WHERE decided_at IS NULL"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _settle(engine, env: dict, sender_running: bool) -> bool:
    if not sender_running:
        from bench.servers import petition_cli

        petition_cli(env, "send-mail")
    return _wait_until_decided(engine)


def _confirmed_signatures(engine, slug: str, emails: list[str]) -> None:
    """Confirmed signatures written straight into the table, with the columns the model has now."""
    from sqlalchemy import insert, select

    from petition.emails import parse
    from petition.models import CONFIRMED, Petition, Signature, utcnow

    table = Signature.__table__
    with engine.begin() as connection:
        petition_id = connection.execute(select(Petition.id).where(Petition.slug == slug)).scalar_one()
        now = utcnow()
        rows = []
        for email in emails:
            address = parse(email)
            values = {"petition_id": petition_id, "name": "Timing Repeat Signer", "email": address.normalised,
                      "email_canonical": address.canonical, "country": "KZ", "status": CONFIRMED,
                      "created_at": now - timedelta(hours=2), "confirmed_at": now - timedelta(hours=1)}
            rows.append({key: value for key, value in values.items() if key in table.c})
        connection.execute(insert(table), rows)


def measure(port: int, database_url: str, env: dict, slug: str, label: str, samples: int = 200,
            seed: int = 7, sender_running: bool = True) -> dict:
    """Set the classes up through the service (and the database for confirmed signatures), then post
    ``samples`` of each class in a random order and compare their times. The over-cap class needs the
    sender to have decided the earlier submissions: the running one, or one pass of ``petition send-mail``."""
    from limits import parse_many
    from sqlalchemy import create_engine

    from petition.settings import read_environment

    config = read_environment(env)
    cap = config.get("MAILS_PER_MAILBOX", config.get("MAILS_PER_SIGNATURE", 3))
    soft = parse_many(config["SIGN_SOFT_LIMIT"])
    widest = max(item.amount for item in soft)
    # One sender address per over-cap mailbox posts it past the cap, and then the measured POST: all within
    # the soft limit's narrowest window, or the measured one would be held too.
    earlier = min(cap + 1, min(item.amount for item in soft) - 1)
    if earlier < cap:
        raise RuntimeError("the soft limit is narrower than the e-mail cap: over-cap posts would be held too")
    engine = create_engine(database_url)
    client = Client(port, slug)
    email = {kind: [f"{_tag(label, kind)}{i}@example.org" for i in range(samples)] for kind in CLASSES}
    try:
        _confirmed_signatures(engine, slug, email["repeat"])
        over_cap_source = {}
        for address in email["over-cap"]:
            over_cap_source[address] = next(client.sources)
            for _ in range(earlier):
                client.post(address, source=over_cap_source[address])
        flooders = ["127.9.0.1", "127.9.0.2"]
        for source in flooders:
            for n in range(GUNICORN_WORKERS * (widest + 1) + 10):
                client.post(f"{label}-flood-{source}-{n}@example.org", source=source)
        settled = _settle(engine, env, sender_running)

        order = [(kind, i) for kind in CLASSES for i in range(samples)]
        random.Random(seed).shuffle(order)
        times: dict[str, list[float]] = {kind: [] for kind in CLASSES}
        gc.collect()
        gc.disable()  # no collection pause inside a measured POST
        try:
            for kind, i in order:
                address = email[kind][i]
                source = flooders[i % 2] if kind == "held-limit" else over_cap_source.get(address)
                honeypot = "http://spam.example" if kind == "held" else ""
                times[kind].append(client.post(address, honeypot=honeypot, source=source))
        finally:
            gc.enable()
        settled = _settle(engine, env, sender_running) and settled
        checks = _class_checks(engine, label, cap, earlier, samples)
    finally:
        engine.dispose()

    reference = times["new"]
    classes = {}
    for kind in CLASSES:
        ordered = sorted(times[kind])
        classes[kind] = {
            "n": len(ordered), "median_ms": round(1000 * statistics.median(ordered), 3),
            "p90_ms": round(1000 * ordered[int(0.9 * (len(ordered) - 1))], 3),
            "z_vs_new": None if kind == "new" else round(mann_whitney_z(times[kind], reference), 2)}
    worst = max(abs(c["z_vs_new"]) for c in classes.values() if c["z_vs_new"] is not None)
    return {"engine": label, "client": "one sequential http.client, a fresh connection per POST to nginx",
            "samples_per_class": samples, "classes": classes, "max_abs_z": worst,
            "classes_as_intended": checks, "sender_caught_up": settled,
            "targets": {"abs_z_below": 2}, "meets_targets": worst < 2 and all(checks.values())}


def _class_checks(engine, label: str, cap: int, earlier: int, samples: int) -> dict[str, bool]:
    """That each class was what it says, from the rows the service wrote: held flags, and which
    submissions the sender mailed."""
    def rows(kind: str, where: str) -> int:
        return _count(engine, f"SELECT count(*) FROM submission WHERE email LIKE :p AND {where}",
                      p=f"{_tag(label, kind)}%")

    return {
        "one_row_per_post": all(rows(kind, "1=1") == samples * (earlier + 1 if kind == "over-cap" else 1)
                                for kind in CLASSES),
        "held_rows_held": rows("held", "held") == samples and rows("held-limit", "held") == samples,
        "others_not_held": all(rows(kind, "NOT held") == rows(kind, "1=1")
                               for kind in ("new", "repeat", "over-cap")),
        "over_cap_not_mailed": rows("over-cap", "mailed_at IS NOT NULL") == samples * cap,
        "new_and_repeat_mailed": all(rows(kind, "mailed_at IS NOT NULL") == samples for kind in ("new", "repeat")),
    }
