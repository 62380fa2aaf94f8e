"""Signing in the production topology: nginx (the shipped server block) serves the static sign and thanks
pages and passes the form's POST to gunicorn; ``wrk`` with bench/signing.lua plays the signers. The
baseline, a bare Flask + SQLAlchemy form app, sits behind the same nginx and is loaded in turns with the
service. Before the load, bench/timing.py measures on the same nginx whether a POST's time tells its class.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import urllib.request
from contextlib import ExitStack, nullcontext
from pathlib import Path

from bench import timing
from bench.baseline import create_schema
from bench.servers import NO_LIMITS, free_port, gunicorn, mail_sender, nginx, petition_cli, service_env

LUA = Path(__file__).with_name("signing.lua")
CONNECTIONS = 16
THREADS = min(2, os.cpu_count() or 1)  # wrk shares the machine's two cores with everything it loads
ROUNDS = 5  # turns of the service and its baseline, so that a drift of the machine falls on both alike
# wrk counts a request slower than its --timeout as an error and leaves it out of its percentiles: 30 s, as
# nginx's proxy_read_timeout, so that every answer nginx would wait for is in them. A run may go on that long
# past its time while the last POSTs are answered (normally it ends at once).
TIMEOUT = 30
DRAIN_BOUND = TIMEOUT + 5
TARGETS = {"ratio_at_least": 1.0, "p99_ms_below": 50, "errors": 0, "rows_equal_accepted": True}


def wrk_binary() -> str:
    found = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)
    if not found:
        raise RuntimeError("wrk not found (apt-get install wrk)")
    return found


def run_wrk(port: int, slug: str, prefix: str, seconds: float, sizes: tuple[int, int]) -> dict:
    """One bounded wrk run of signers against nginx; the figures its script's done() prints."""
    origin = f"http://127.0.0.1:{port}"
    command = [wrk_binary(), "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{int(seconds) + DRAIN_BOUND}s",
               "--timeout", f"{TIMEOUT}s", "-s", str(LUA), f"{origin}/", "--", slug, prefix, str(seconds),
               str(sizes[0]), str(sizes[1]), origin]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        drained, noise = 0, []
        while drained < THREADS:
            line = process.stderr.readline()  # wrk ends by itself at -d if a thread never drains
            if not line:
                break
            if line.strip() == "drained":
                drained += 1
            else:
                noise.append(line.strip())
        if drained == THREADS:
            process.send_signal(signal.SIGINT)  # wrk's own way to end early, with its summary and done()
        out, err = process.communicate(timeout=seconds + DRAIN_BOUND + 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = [line for line in out.splitlines() if line.startswith('{"signing":')]
    if not lines:
        raise RuntimeError(f"wrk printed no result: {out[-2000:]} {' '.join(noise)} {err[-2000:]}")
    return json.loads(lines[-1])["signing"]


def errors(run: dict) -> int:
    """Socket errors and every answer that was not the one expected (wrong status or page)."""
    return sum(run["socket_errors"].values()) + run["unexpected"]


def side_summary(runs: list[dict], rows: int) -> dict:
    accepted = sum(r["accepted"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    return {
        "signers_per_second": round(sum(r["completed"] for r in runs) / seconds, 1),
        "round_signers_per_second": [r["signers_per_second"] for r in runs],
        "signers": sum(r["completed"] for r in runs), "accepted": accepted, "rows": rows,
        "rows_match_accepted": rows == accepted, "seconds": round(seconds, 2),
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(errors(r) for r in runs),
        "socket_errors": {k: sum(r["socket_errors"][k] for r in runs) for k in runs[0]["socket_errors"]},
        "unexpected_answers": " ".join(r["unexpected_seen"] for r in runs if r["unexpected_seen"])[:300],
        "all_drained": all(r["drained"] == r["threads"] for r in runs),
        # wrk's percentiles are per run; the worst round's p99 stands for the side.
        "p50_ms": round(statistics.median(r["latency_ms"]["p50"] for r in runs), 2),
        "p99_ms": max(r["latency_ms"]["p99"] for r in runs),
        "round_p99_ms": [r["latency_ms"]["p99"] for r in runs],
        "max_ms": max(r["latency_ms"]["max"] for r in runs),
    }


def count(url: str, sql: str, **params) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def static_pages(site: Path, slug: str) -> tuple[int, int]:
    """Sizes of the built sign and thanks pages, by which the script tells their answers apart."""
    pages = [site / "petitions" / slug / name / "index.html" for name in ("sign", "thanks")]
    missing = [str(page.relative_to(site)) for page in pages if not page.exists()]
    if missing:
        raise RuntimeError(f"the built site lacks the static pages {missing}: the new signing flow needs them")
    sizes = tuple(page.stat().st_size for page in pages)
    if sizes[0] == sizes[1]:
        raise RuntimeError("the sign and thanks pages have the same size: the script could not tell them apart")
    return sizes  # type: ignore[return-value]


def check_static(port: int, site: Path, slug: str) -> None:
    """Both pages come from nginx as the files are, not from an upstream."""
    for name in ("sign", "thanks"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/petitions/{slug}/{name}/", timeout=5) as answer:
            if answer.read() != (site / "petitions" / slug / name / "index.html").read_bytes():
                raise RuntimeError(f"nginx does not serve the static {name} page as built")


def paused(sender):
    return sender.paused() if sender else nullcontext()


def measure(label: str, database_url: str, baseline_url: str, work: Path, site: Path, slug: str,
            seconds: float, samples: int, load: bool = True, with_sender: bool = True) -> tuple[dict | None, dict]:
    """On one database engine: the timing benchmark, then (with ``load``) the throughput rounds; the mail
    sender runs beside the service throughout, as in production, unless ``with_sender`` is false.
    Returns (signing figures or None, timing figures)."""
    sizes = static_pages(site, slug)
    service_port, base_port = free_port(), free_port()
    with ExitStack() as stack:
        ports = stack.enter_context(nginx(site, {"service": service_port, "baseline": base_port},
                                          work / f"nginx-{label}"))
        base = {"PETITION_TRUSTED_PROXIES": "1", "PETITION_BASE_URL": f"http://127.0.0.1:{ports['service']}"}
        env = service_env(database_url, work / f"instance-{label}", base, site)
        petition_cli(env, "db", "upgrade")
        petition_cli(env, "sync")
        check_static(ports["service"], site, slug)
        sender = stack.enter_context(mail_sender(env, work / f"mail-{label}.log")) if with_sender else None

        # Timing on the shipped limits (the soft limit makes one of the classes); the load lifts them, as
        # all of wrk's signers come from one address.
        with gunicorn("petition:create_app()", env, service_port):
            figures_timing = timing.measure(ports["service"], database_url, env, slug, label, samples,
                                            sender_running=with_sender)
            figures_timing["mail_sender_running"] = with_sender
        if not load:
            return None, figures_timing

        create_schema(baseline_url)
        ours = {**env, **NO_LIMITS}
        with gunicorn("petition:create_app()", ours, service_port), \
                gunicorn("bench.baseline:form_app()", {**ours, "BASELINE_DATABASE_URL": baseline_url}, base_port):
            check_static(ports["baseline"], site, slug)
            run_wrk(ports["service"], slug, f"warm-ours-{label}", 2, sizes)
            with paused(sender):
                run_wrk(ports["baseline"], slug, f"warm-base-{label}", 2, sizes)
            runs: dict[str, list[dict]] = {"ours": [], "base": []}
            for round_ in range(ROUNDS):
                runs["ours"].append(run_wrk(ports["service"], slug, f"ours-{label}-r{round_}", seconds / ROUNDS,
                                            sizes))
                with paused(sender):  # its work is the service's: none of it on the baseline's turns
                    runs["base"].append(run_wrk(ports["baseline"], slug, f"base-{label}-r{round_}",
                                                seconds / ROUNDS, sizes))
        sender_alive = sender.alive() if sender else None

    like = "SELECT count(*) FROM submission WHERE email LIKE :p"
    ours_rows = count(database_url, like, p=f"ours-{label}-r%")
    base_rows = count(baseline_url, like, p=f"base-{label}-r%")
    ratios = [o["signers_per_second"] / b["signers_per_second"] for o, b in zip(runs["ours"], runs["base"])]
    service = side_summary(runs["ours"], ours_rows)
    service["mail_sender"] = {
        "running": with_sender, "running_at_end": sender_alive,
        "decided": count(database_url, like + " AND decided_at IS NOT NULL", p=f"ours-{label}-r%"),
        "eml_files_timing_and_load": sum(1 for _ in (work / f"instance-{label}").rglob("*.eml")),
    }
    baseline = side_summary(runs["base"], base_rows)
    figures = {
        "engine": label, "connections": CONNECTIONS, "wrk_threads": THREADS, "rounds": ROUNDS,
        "seconds_per_round": round(seconds / ROUNDS, 2),
        "service": service, "baseline": baseline,
        "ratio": round(statistics.median(ratios), 2), "round_ratios": [round(r, 2) for r in ratios],
        "targets": TARGETS,
    }
    figures["meets_targets"] = {
        "ratio": figures["ratio"] >= TARGETS["ratio_at_least"],
        "p99": service["p99_ms"] < TARGETS["p99_ms_below"],
        "errors": service["errors"] == TARGETS["errors"],
        "rows": service["rows_match_accepted"] and baseline["rows_match_accepted"],
    }
    return figures, figures_timing
