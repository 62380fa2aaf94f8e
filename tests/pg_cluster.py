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


class Cluster:
    """A cluster tuned for speed over durability (fsync off), with one empty database, that can be stopped and
    started again on the same port: an outage of the database, for the tests."""

    def __init__(self, port: int, database: str = "petition_test") -> None:
        binaries = bindir()
        if binaries is None:
            raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
        self.binaries, self.port, self.database = binaries, port, database
        self.datadir = Path(tempfile.mkdtemp(prefix="petition-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            import pwd

            postgres = pwd.getpwnam("postgres")
            os.chown(self.datadir, postgres.pw_uid, postgres.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(self.as_user + [str(self.binaries / "pg_ctl"), "-D", str(self.datadir / "data"),
                                              *args], check=check, capture_output=True)

    def create(self) -> None:
        subprocess.run(self.as_user + [str(self.binaries / "initdb"), "-D", str(self.datadir / "data"), "-U",
                                       "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale"],
                       check=True, capture_output=True)
        self.start()
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.database}")

    def start(self) -> None:
        """Start (again), and return once it accepts connections."""
        # wal_recycle=off: a WAL segment past its use is unlinked, not kept under a new name with old rows in it
        # (see petition.erasure).
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.datadir} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c wal_recycle=off")
        self._pg_ctl("-o", options, "-l", str(self.datadir / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop, and return once it is down: ``fast`` ends every session, as a restart by an operator does;
        ``immediate`` as a crash."""
        self._pg_ctl("-m", mode, "-w", "stop")

    def remove(self) -> None:
        self._pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self.datadir, ignore_errors=True)


@contextmanager
def cluster(port: int, database: str = "petition_test") -> Iterator[Cluster]:
    """A started ``Cluster`` with an empty database, removed afterwards."""
    made = Cluster(port, database)
    try:
        made.create()
        yield made
    finally:
        made.remove()


@contextmanager
def running(port: int, database: str = "petition_test") -> Iterator[str]:
    """Start a cluster tuned for speed over durability (fsync off), yield the SQLAlchemy URL of an empty
    database in it, and remove it all afterwards."""
    with cluster(port, database) as made:
        yield made.url
