"""The two commands a fresh machine needs: ``python3 tasks.py run`` and ``python3 tasks.py test``.

Only Python 3.11 is assumed: this script makes ``.venv``, installs the project into it (again whenever
``pyproject.toml`` changes), then publishes the site and serves it with the service, or runs the test suite.
Extra arguments are passed on to ``petition serve`` or to pytest.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
EXTRAS = ("site", "test")


def install(extras: tuple[str, ...] = EXTRAS) -> None:
    if not (BIN / "python").exists():
        print("Creating .venv ...", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = VENV / f".installed-{'-'.join(extras)}"
    if stamp.exists() and stamp.stat().st_mtime >= (ROOT / "pyproject.toml").stat().st_mtime:
        return
    print("Installing the project and its dependencies into .venv ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["install", "-e", f"{ROOT}[{','.join(extras)}]"], check=True)
    stamp.touch()


def install_browser_tools() -> None:
    """axe-core, from the npm registry, for the accessibility tests (npm ci: exactly the locked version)."""
    folder = ROOT / "tests" / "e2e"
    stamp = folder / "node_modules" / ".installed"
    if stamp.exists() and stamp.stat().st_mtime >= (folder / "package-lock.json").stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None:
        print("npm not found: the accessibility tests will say so (apt-get install npm)", flush=True)
        return
    print("Installing the browser-side test tools (npm ci) ...", flush=True)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(folder)], check=True)
    stamp.touch()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test", "bench"):
        print(__doc__.strip())
        return 2
    install(EXTRAS + ("bench",) if argv[0] == "bench" else EXTRAS)  # scipy only for the benchmarks
    os.chdir(ROOT)
    if argv[0] == "bench":
        return subprocess.call([str(BIN / "python"), str(ROOT / "bench" / "benchmarks.py")] + argv[1:])
    if argv[0] == "test":
        install_browser_tools()
        return subprocess.call([str(BIN / "python"), "-m", "pytest"] + argv[1:])
    env = {**os.environ}
    if not env.get("PETITION_BASE_URL"):  # the site's own links (canonical, share, RSS) name the address served
        env["PETITION_BASE_URL"] = served_address(argv[1:])
    petition = str(BIN / "petition")
    print("Publishing the site ...", flush=True)
    ready = subprocess.call([petition, "db", "upgrade"], env=env) or subprocess.call([petition, "publish"], env=env)
    return ready or subprocess.call([petition, "serve"] + argv[1:], env=env)


def served_address(serve_args: list[str]) -> str:
    """``http://host:port`` of ``petition serve`` with these arguments (its defaults: 127.0.0.1, 8000)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="8000")
    known, _ = parser.parse_known_args(serve_args)
    host = "127.0.0.1" if known.host in ("0.0.0.0", "::") else known.host
    return f"http://{f'[{host}]' if ':' in host else host}:{known.port}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
