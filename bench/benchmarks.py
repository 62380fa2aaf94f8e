"""The benchmarks: each measures its own baseline in the same run, on the same machine, and prints its figure
and the ratio to that baseline. Run them all with ``bench/run``; the summary goes to ``bench/results.json``.

1. signing: signers driven by wrk through nginx and gunicorn, as in production (SQLite and PostgreSQL),
   against a minimal Flask form app behind the same nginx; and whether a POST's time tells its class
   (bench/signing.py, bench/timing.py);
2. count API with a million signatures against a hello-world JSON endpoint;
3. export of a million signatures to CSV against ``sqlite3 -csv``, and its peak memory at 100,000 rows;
4. ``mkdocs build`` with 10, 100 and 1,000 generated posts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench import load, signing  # noqa: E402
from bench.servers import GUNICORN, build_site, free_port, gunicorn, petition_cli, service_env  # noqa: E402

SLUG = "vadim-kuramshin"
CLIENTS = 16
LOAD_ROUNDS = 5  # each load run is split into this many turns of the service and its baseline
EXPORT_ROUNDS = 3  # exports of a million rows and their baseline dumps, in turns


def alternate(mode: str, ours: tuple[int, str], base: tuple[int, str], seconds: float) -> dict:
    """Load the service and its baseline in turns, LOAD_ROUNDS times each, so that a drift of the machine
    falls on both alike; the ratio is the median of the rounds' ratios."""
    runs: dict[str, list[load.Result]] = {"ours": [], "base": []}
    for _ in range(LOAD_ROUNDS):
        for side, (port, path) in (("ours", ours), ("base", base)):
            runs[side].append(load.run(mode, port, path, CLIENTS, seconds / LOAD_ROUNDS))
    ratios = [o.completed / o.seconds / (b.completed / b.seconds) for o, b in zip(runs["ours"], runs["base"])]
    return {"ours": load.merged(runs["ours"]), "base": load.merged(runs["base"]),
            "ratio": round(statistics.median(ratios), 2), "round_ratios": [round(r, 2) for r in ratios]}


def seed_million(database: Path, counts: dict[str, int]) -> None:
    """Confirmed signatures straight into SQLite, as fast as it takes them, in the columns the model has now
    (a column we do not fill must be nullable or have a fixed default)."""
    from petition.models import Signature

    table = Signature.__table__
    connection = sqlite3.connect(database)
    ids = dict(connection.execute("SELECT slug, id FROM petition"))
    countries = ["KZ", "KZ", "KZ", "RU", "GB", "DE", "FR", "US", "UA", "KG"]
    start = datetime(2026, 11, 1)
    rng = random.Random(7)
    makers = {
        "petition_id": lambda slug, n: ids[slug], "name": lambda slug, n: f"Signer {n} Курамшин",
        "email": lambda slug, n: f"s{n}@{slug}.example.org",
        "email_canonical": lambda slug, n: f"s{n}@{slug}.example.org",
        "country": lambda slug, n: countries[n % 10], "postcode": lambda slug, n: "Astana",
        "comment": lambda slug, n: "Free Vadim" if n % 7 else "=1+1", "public": lambda slug, n: n % 3 == 0,
        "updates": lambda slug, n: n % 2 == 0, "status": lambda slug, n: "confirmed",
        "created_at": lambda slug, n: (start + timedelta(seconds=n * 2)).isoformat(sep=" "),
        "confirmed_at": lambda slug, n: (start + timedelta(seconds=n * 2 + 60)).isoformat(sep=" "),
        "nonce": lambda slug, n: f"{rng.getrandbits(64):016x}",
    }
    fixed = {}
    for column in table.columns:
        if column.name in makers or column.primary_key or column.nullable:
            continue
        if column.default is None or not column.default.is_scalar:
            raise RuntimeError(f"seed_million does not know how to fill signature.{column.name}")
        fixed[column.name] = column.default.arg
    columns = [c.name for c in table.columns if c.name in makers] + list(fixed)
    fill = [makers[name] for name in columns if name in makers]
    statement = f"INSERT INTO signature ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    for slug, number in counts.items():
        connection.executemany(statement, (tuple(f(slug, n) for f in fill) + tuple(fixed.values())
                                           for n in range(number)))
    connection.commit()
    connection.close()


def measure_count_api(database_url: str, instance: Path, seconds: float, site: Path) -> dict:
    env = service_env(database_url, instance, site=site)
    with gunicorn("petition:create_app()", env) as ours_port, gunicorn("bench.baseline:hello_app()", env) as base_port:
        load.run("get", ours_port, f"/api/petitions/{SLUG}", CLIENTS, 2)
        load.run("get", base_port, "/hello", CLIENTS, 2)
        figures = alternate("get", (ours_port, f"/api/petitions/{SLUG}"), (base_port, "/hello"), seconds)
        body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ours_port}/api/petitions/{SLUG}").read())
    return {"signatures": body["signature_count"], "service": figures["ours"].summary(),
            "baseline": figures["base"].summary(), "ratio": figures["ratio"],
            "round_ratios": figures["round_ratios"], "targets": {"ratio_at_least": 0.8}}


def timed(command: list[str], output: Path, env: dict | None = None) -> tuple[float, int]:
    """(seconds, peak resident memory in MB) of a command, by /usr/bin/time -v."""
    with output.open("wb") as handle:
        result = subprocess.run(["/usr/bin/time", "-v", *command], stdout=handle, stderr=subprocess.PIPE,
                                env=env, cwd=ROOT, check=True)
    report = result.stderr.decode()
    clock = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", report)
    hours, minutes, secs = int(clock.group(1) or 0), int(clock.group(2)), float(clock.group(3))
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", report).group(1))
    return round(hours * 3600 + minutes * 60 + secs, 2), round(rss_kb / 1024)


def measure_export(database: Path, env: dict, workdir: Path) -> dict:
    """Each export and the ``sqlite3 -csv`` dump of the same rows in turns, EXPORT_ROUNDS times; the ratio is
    the median of the rounds' ratios, the figures those of the median round."""
    columns = "name,email,country,postcode,comment,public,updates,status,created_at,confirmed_at"
    ids = dict(sqlite3.connect(database).execute("SELECT slug, id FROM petition"))
    rounds = []
    for _ in range(EXPORT_ROUNDS):
        figures = {}
        for slug, label in ((SLUG, "1m"), ("small", "100k")):
            seconds, peak = timed([str(BIN / "petition"), "export", "signatures", slug, "--status", "all",
                                   "-o", str(workdir / f"{label}.csv")], workdir / f"{label}.log", env)
            figures[label] = {"seconds": seconds, "peak_mb": peak,
                              "bytes": (workdir / f"{label}.csv").stat().st_size}
        figures["sqlite3"], _ = timed(["sqlite3", "-csv", "-header", str(database),
                                       f"SELECT {columns} FROM signature WHERE petition_id = {ids[SLUG]}"],
                                      workdir / "sqlite3.csv")
        figures["ratio"] = figures["1m"]["seconds"] / figures["sqlite3"]
        rounds.append(figures)
    median = sorted(rounds, key=lambda figures: figures["ratio"])[EXPORT_ROUNDS // 2]
    return {"export_1m": median["1m"], "export_100k": median["100k"],
            "baseline_sqlite3_csv_seconds": median["sqlite3"],
            "ratio_time": round(median["ratio"], 2), "round_ratios": [round(r["ratio"], 2) for r in rounds],
            "peak_mb_all_rounds": max(r[label]["peak_mb"] for r in rounds for label in ("1m", "100k")),
            "memory_growth": round(median["1m"]["peak_mb"] / median["100k"]["peak_mb"] - 1, 3),
            "targets": {"ratio_time_at_most": 2.0, "peak_mb_below": 150, "memory_growth_at_most": 0.10}}


def measure_site(counts: list[int], workdir: Path) -> dict:
    template = (ROOT / "docs/en/blog/posts/2014-12-01-third-anniversary-of-zhanaozen-massacre.md").read_text()
    figures = {}
    for number in counts:
        tree = workdir / f"site-{number}"
        shutil.copytree(ROOT / "docs", tree / "docs")
        shutil.copytree(ROOT / "overrides", tree / "overrides")
        shutil.copy(ROOT / "mkdocs.yml", tree)
        posts = tree / "docs/en/blog/posts"
        for old in posts.glob("*.md"):
            old.unlink()
        (tree / "docs/en/take-action.md").write_text((ROOT / "docs/en/take-action.md").read_text().replace(
            "(blog/posts/2014-05-01-vadim-kuramshin-beaten-and-intimidated-in-prison.md)", "(blog/index.md)"))
        first = datetime(2010, 1, 1)
        for n in range(number):
            day = (first + timedelta(days=n * 3)).date()
            text = re.sub(r"created: [\d-]+", f"created: {day}", template)
            text = text.replace("# Third anniversary of Zhanaozen massacre", f"# Generated post number {n}")
            (posts / f"{day}-generated-{n}.md").write_text(text)
        env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
        started = time.monotonic()
        subprocess.run([str(BIN / "mkdocs"), "build", "-q", "-f", str(tree / "mkdocs.yml"), "-d", str(tree / "out")],
                       env=env, check=True, capture_output=True)
        figures[str(number)] = round(time.monotonic() - started, 2)
    return {"build_seconds_by_posts": figures,
            "time_ratio_most_to_fewest_posts": round(figures[str(counts[-1])] / figures[str(counts[0])], 1)}


def measure_signing_and_timing(work: Path, site: Path, seconds: float, samples: int, load: bool,
                               with_sender: bool) -> dict:
    """Both engines, each in its own run of bench/signing.py (timing first, then the load)."""
    import pg_cluster

    figures: dict = {"signing": [], "timing": []}

    def add(result: tuple) -> None:
        if result[0] is not None:
            figures["signing"].append(result[0])
        figures["timing"].append(result[1])

    add(signing.measure("sqlite", f"sqlite:///{work / 'sign.sqlite3'}",
                        f"sqlite:///{work / 'sign-baseline.sqlite3'}", work, site, SLUG, seconds, samples, load,
                        with_sender))
    with pg_cluster.running(free_port(), "petition_bench") as url:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql").rsplit("/", 1)[0]
                             + "/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE baseline_bench")
        add(signing.measure("postgresql", url, url.replace("/petition_bench", "/baseline_bench"), work, site,
                            SLUG, seconds, samples, load, with_sender))
    return {key: value for key, value in figures.items() if value}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30,
                        help="Length of each load run, split into turns of the service and its baseline "
                             "(10 is enough for a quick check of signing).")
    parser.add_argument("--rows", type=int, default=1_000_000, help="Signatures for the count and export runs.")
    parser.add_argument("--samples", type=int, default=200, help="POSTs of each class in the timing run.")
    parser.add_argument("--only", choices=["signing", "timing", "count", "export", "site"], action="append",
                        help="Run only these (repeatable); 'signing' includes the timing run, 'timing' is it "
                             "alone. The sections not run are kept from the results file.")
    parser.add_argument("--no-mail-sender", action="store_true",
                        help="Signing without `petition send-mail --loop` beside the service (it runs by "
                             "default, as in production): the sign form's POST alone.")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.json")
    options = parser.parse_args()
    only = set(options.only or ["signing", "count", "export", "site"])
    if shutil.which("sqlite3") is None or not Path("/usr/bin/time").exists():
        print("bench needs Debian's sqlite3 and time: apt-get install sqlite3 time", file=sys.stderr)
        return 2
    if only & {"signing", "timing"} and not all(Path(p).exists() or shutil.which(Path(p).name)
                                                 for p in ("/usr/bin/wrk", "/usr/sbin/nginx")):
        print("signing needs Debian's wrk and nginx: apt-get install wrk nginx", file=sys.stderr)
        return 2
    summary: dict = {}
    if options.only and options.output.exists():
        summary = json.loads(options.output.read_text())
    summary.update({"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
                    "when": datetime.now().isoformat(timespec="seconds"), "gunicorn": " ".join(GUNICORN[:6])})
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="petition-bench-") as folder:
        work = Path(folder)
        site = build_site(work / "site")
        if only & {"signing", "timing"}:
            summary.update(measure_signing_and_timing(work, site, options.seconds, options.samples,
                                                      load="signing" in only,
                                                      with_sender=not options.no_mail_sender))
        if only & {"count", "export"}:
            database = work / "million.sqlite3"
            env = service_env(f"sqlite:///{database}", work / "i3", site=site)
            petitions = ROOT / "docs/en/petitions"
            extra = work / "petitions"
            shutil.copytree(petitions, extra)
            (extra / "small.md").write_text((petitions / "vadim-kuramshin.md").read_text().replace(
                "slug: vadim-kuramshin", "slug: small"))
            env["PETITION_PETITIONS_DIR"] = str(extra)
            petition_cli(env, "db", "upgrade")
            petition_cli(env, "sync")
            seed_million(database, {SLUG: options.rows, "small": options.rows // 10})
            if "count" in only:
                summary["count_api"] = measure_count_api(f"sqlite:///{database}", work / "i3", options.seconds,
                                                         site)
            if "export" in only:
                summary["export"] = measure_export(database, env, work)
        if "site" in only:
            summary["site_build"] = measure_site([10, 100, 1000], work)
    summary["total_seconds"] = round(time.monotonic() - began, 1)
    options.output.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
