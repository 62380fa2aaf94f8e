"""``petition publish``: the editors' one command, which cannot leave the site broken or half built.

The declarations are checked first. The site is built into a fresh folder beside the served one; only when
the whole build succeeded is it put in place, by pointing the served name (``site``, a symbolic link) at it
with one rename, which readers see either before or after, never between. Until then, and on any failure,
the served site stays as it was. The previous build is kept (a request may still be reading it); older
ones are removed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .declarations import Declaration, load_folder

BUILDS = ".sites"  # beside the served name: the builds it points at
KEPT = 2  # the served build and the one before it


class PublishError(Exception):
    """The site could not be built; the served one is unchanged. ``str()`` says why."""


@contextmanager
def one_at_a_time(site: Path) -> Iterator[None]:
    """Two editors publishing at once take turns: each build is swapped in whole."""
    builds = site.parent / BUILDS
    builds.mkdir(exist_ok=True)
    with open(builds / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def check(folder: Path | str) -> list[Declaration]:
    """Every declaration, or ``DeclarationError`` naming the file and field of the first bad one."""
    return load_folder(folder)


def build(config_file: Path, site: Path, base_url: str) -> Path:
    """Build the site into a new folder of ``<site's folder>/.sites``; return it. Nothing served changes."""
    builds = site.parent / BUILDS
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    target = builds / stamp
    env = {**os.environ, "PETITION_BASE_URL": base_url + "/",
           "NO_MKDOCS_2_WARNING": "1"}  # Material's notice about its end of life is not the editors' business
    done = subprocess.run(
        # Not --quiet: it hides the warnings that --strict counts, and a broken link would be published.
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config_file),
         "--site-dir", str(target)],
        cwd=config_file.parent, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        discard(target)
        said = [line for line in (done.stderr + done.stdout).splitlines() if not line.startswith("INFO")]
        raise PublishError("\n".join(said).strip() or f"mkdocs build failed ({done.returncode})")
    return target


def discard(build_dir: Path) -> None:
    shutil.rmtree(build_dir, ignore_errors=True)


def swap(site: Path, build_dir: Path) -> None:
    """Serve ``build_dir`` at ``site`` in one rename. A ``site`` that is a folder (built before publish
    existed) is first moved among the builds: the one moment the site is absent, once per installation."""
    link = site.with_name(f".{site.name}.next")
    link.unlink(missing_ok=True)
    link.symlink_to(build_dir.relative_to(site.parent), target_is_directory=True)
    if site.is_dir() and not site.is_symlink():
        site.rename(build_dir.parent / f"{build_dir.name}-before")
    os.replace(link, site)
    _prune(build_dir.parent, keep=build_dir)


def _prune(builds: Path, keep: Path) -> None:
    old = sorted((p for p in builds.iterdir() if p.is_dir() and p != keep), key=lambda p: p.name)
    for folder in old[: max(0, len(old) - (KEPT - 1))]:
        shutil.rmtree(folder, ignore_errors=True)
