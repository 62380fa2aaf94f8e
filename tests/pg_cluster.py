"""A throwaway PostgreSQL cluster on loopback, from Debian's binaries, for the tests and the benchmarks."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


@contextmanager
def running(port: int, database: str = "petition_test") -> Iterator[str]:
    """Start a cluster tuned for speed over durability (fsync off), yield the SQLAlchemy URL of an empty
    database in it, and remove it all afterwards."""
    binaries = bindir()
    if binaries is None:
        raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
    datadir = Path(tempfile.mkdtemp(prefix="petition-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        postgres = pwd.getpwnam("postgres")
        os.chown(datadir, postgres.pw_uid, postgres.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(as_user + [str(binaries / "initdb"), "-D", str(datadir / "data"), "-U", "postgres",
                              "--auth=trust", "--encoding=UTF8", "--no-locale"], check=True, capture_output=True)
    # wal_recycle=off: a WAL segment past its use is unlinked, not kept under a new name with old rows in it
    # (see petition.erasure).
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {datadir} -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c wal_recycle=off")
    subprocess.run(as_user + [str(binaries / "pg_ctl"), "-D", str(datadir / "data"), "-o", options,
                              "-l", str(datadir / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {database}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run(as_user + [str(binaries / "pg_ctl"), "-D", str(datadir / "data"), "-m", "immediate",
                                  "stop"], capture_output=True)
        shutil.rmtree(datadir, ignore_errors=True)
