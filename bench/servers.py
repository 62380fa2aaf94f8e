"""The servers the benchmarks start on loopback: gunicorn, nginx in front of it as in production, the mail
sender, and the built site. Everything listens on 127.0.0.1 only and is stopped when its block ends."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

# One gunicorn configuration for the service and its baselines: the one deploy/systemd/petition-web.service
# runs in production, three sync workers behind nginx (which buffers slow clients, as sync workers need).
GUNICORN = ["--workers", "3", "--worker-class", "sync", "--backlog", "512", "--chdir", str(ROOT)]
NO_LIMITS = {"PETITION_SIGN_SOFT_LIMIT": "10000000 per hour", "PETITION_SIGN_HARD_LIMIT": "10000000 per hour"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(database_url: str, instance: Path, extra: dict | None = None, site: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETITION_")}
    env.update({"PETITION_DATABASE_URL": database_url, "PETITION_INSTANCE_PATH": str(instance),
                "PETITION_SECRET_KEY": "benchmark only", "PETITION_SITE_DIR": str(site or ROOT / "site"),
                "PETITION_PETITIONS_DIR": str(ROOT / "docs" / "en" / "petitions"), **(extra or {})})
    return env


def petition_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "petition"), *args], env=env, cwd=ROOT, check=True, capture_output=True,
                          text=True)


def build_site(destination: Path) -> Path:
    """The site as it is now, built apart, so that no run depends on an old ``site/`` folder."""
    subprocess.run([str(BIN / "mkdocs"), "build", "-q", "-d", str(destination)], cwd=ROOT, check=True,
                   capture_output=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    return destination


def _wait_for(url: str, process: subprocess.Popen, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)  # in case it was paused
        process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def gunicorn(app: str, env: dict, port: int | None = None):
    port = port or free_port()
    process = subprocess.Popen([str(BIN / "gunicorn"), *GUNICORN, "--bind", f"127.0.0.1:{port}", app], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(f"http://127.0.0.1:{port}/", process, f"gunicorn {app}")
        yield port
    finally:
        _stop(process)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        raise RuntimeError("nginx not found (apt-get install nginx)")
    return found


def server_blocks(site: Path, upstreams: dict[str, int], folder: Path) -> tuple[str, dict[str, int]]:
    """One server block per upstream, each made from deploy/nginx/campaign.conf at run time by the production
    test's own function (so the locations sent to the service are always the shipped ones); the upstream of
    each is renamed after its side, so that both sides can share one nginx."""
    from test_production import site_server_for_test

    shipped = (ROOT / "deploy" / "nginx" / "campaign.conf").read_text(encoding="utf-8")
    name = re.search(r"^upstream (\S+) \{", shipped, re.MULTILINE).group(1)
    blocks, ports = [], {}
    for side, upstream_port in upstreams.items():
        ports[side] = free_port()
        block = site_server_for_test(shipped, ports[side], upstream_port, site, folder)
        blocks.append(re.sub(rf"\b{re.escape(name)}\b", f"bench_{side}", block))
    return "\n".join(blocks), ports


@contextmanager
def nginx(site: Path, upstreams: dict[str, int], folder: Path):
    """nginx with Debian's defaults that matter here (a worker per core, sendfile), no access log (as the
    shipped block says), in front of the given upstream ports; yields {side: nginx port}."""
    binary = nginx_binary()
    folder.mkdir(parents=True, exist_ok=True)
    blocks, ports = server_blocks(site, upstreams, folder)
    (folder / "campaign.conf").write_text(blocks)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the site in our private temp folder
    (folder / "nginx.conf").write_text(f"""{user}worker_processes auto;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 768; }}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/campaign.conf;
}}
""")
    command = [binary, "-p", str(folder), "-c", str(folder / "nginx.conf")]
    checked = subprocess.run(command + ["-t"], capture_output=True, text=True)
    if checked.returncode:
        raise RuntimeError(f"nginx configuration refused: {checked.stderr}")
    process = subprocess.Popen(command + ["-g", "daemon off;"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        for port in ports.values():
            _wait_for(f"http://127.0.0.1:{port}/", process, "nginx")
        yield ports
    finally:
        _stop(process)


class MailSender:
    """``petition send-mail --loop`` as deploy/systemd/petition-mail.service runs it, beside the service.
    With no SMTP set it writes .eml files into the instance folder. ``paused`` stops it (SIGSTOP) while the
    baseline is measured, so that its work falls on the service's turns only."""

    def __init__(self, env: dict, log: Path, interval: float = 5.0) -> None:
        self.log = log.open("ab")
        self.process = subprocess.Popen([str(BIN / "petition"), "send-mail", "--loop", "--interval",
                                         str(interval)], env=env, cwd=ROOT, stdout=self.log,
                                        stderr=subprocess.STDOUT)

    @contextmanager
    def paused(self):
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGCONT)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        _stop(self.process)
        self.log.close()


@contextmanager
def mail_sender(env: dict, log: Path):
    sender = MailSender(env, log)
    try:
        yield sender
    finally:
        sender.stop()
