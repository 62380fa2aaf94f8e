"""The embedded server (``petition serve``) under slow, oversized and malformed requests, over real sockets on
loopback: it keeps serving everyone else, refuses bodies by their size without reading them, and answers
malformed paths with a 4xx and no traceback."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

from petition.app import MAX_REQUEST_BYTES

from conftest import SHIPPED_PETITIONS, VALID, Browser, free_port, wait_until_serving

PETITION = Path(sys.executable).with_name("petition")
SIGN = "/petitions/vadim-kuramshin/sign"

pytestmark = pytest.mark.slow


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    stderr: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self, timeout: float = 10) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def open_sockets(self) -> int | None:
        """How many sockets the server process has open, where the system tells (Linux's /proc)."""
        folder = Path(f"/proc/{self.process.pid}/fd")
        if not folder.is_dir():
            return None
        count = 0
        for fd in folder.iterdir():
            try:
                count += os.readlink(fd).startswith("socket:")
            except FileNotFoundError:
                pass  # closed meanwhile
        return count

    def assert_serving(self) -> None:
        assert self.process.poll() is None, f"the server exited with {self.process.returncode}"
        status, _, home = Browser(self.base).request("/")
        assert status == 200 and "Solidarity with Kazakhstan" in home


@pytest.fixture
def server(tmp_path, built_site):
    """``petition serve`` with the built site, its log (stderr) kept apart from what it prints."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETITION_")}
    env.update({"PETITION_SITE_DIR": str(built_site), "PETITION_PETITIONS_DIR": str(SHIPPED_PETITIONS),
                "PETITION_COUNT_CACHE_SECONDS": "0", "PETITION_INSTANCE_PATH": str(tmp_path / "instance")})
    stderr = tmp_path / "stderr.log"
    with (tmp_path / "stdout.log").open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen([str(PETITION), "serve", "--port", str(port)], cwd=tmp_path, env=env,
                                   stdout=out, stderr=err)
    try:
        wait_until_serving(Browser(f"http://127.0.0.1:{port}"), "/api/petitions", process)
        yield Server(port, process, stderr)
    finally:
        process.terminate()
        process.wait(timeout=15)


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1."), response[:80]
    return int(response.split(b" ", 2)[1])


def read_response(sock: socket.socket, seconds: float = 10) -> bytes:
    """What the server sends until it closes the connection (or a reset ends it)."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def get(server: Server, target: str) -> bytes:
    """A GET of ``target`` exactly as written (no client's normalising), and the whole answer."""
    with server.connect() as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode("latin-1"))
        return read_response(sock)


def post_head(length_header: str) -> bytes:
    return (f"POST {SIGN} HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: same-origin\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n{length_header}\r\n\r\n").encode()


# ---------------------------------------------------------------- slow clients


class SlowClients:
    """Connections that each send a request's header a line at a time, a line a second, and never end it."""

    def __init__(self, server: Server, count: int) -> None:
        self.sockets = []
        for _ in range(count):
            sock = server.connect()
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            self.sockets.append(sock)
        self.stopped = threading.Event()
        self.lines = 0
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        while not self.stopped.wait(1.0):
            self.lines += 1
            for sock in self.sockets:
                try:
                    sock.send(f"X-Slow-{self.lines}: x\r\n".encode())
                except OSError:
                    pass  # closed by the server: that is allowed, serving the others is what is tested

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def test_slow_clients_do_not_keep_anyone_else_out(server):
    """200 connections trickling header lines (the default limit of 100 connections left every page
    unreachable for as long as they lasted): another visitor reads the home page and the count and signs."""
    slow = SlowClients(server, 200)
    try:
        time.sleep(3)  # every slow client has been accepted (or is waiting to be) and sent lines since
        held = server.open_sockets()
        assert held is None or held >= len(slow.sockets), f"{held} sockets open: the rest wait to be accepted"
        started = time.monotonic()
        browser = Browser(server.base)
        status, _, home = browser.request("/")
        assert status == 200 and "Solidarity with Kazakhstan" in home
        status, _, count = browser.request("/api/petitions/vadim-kuramshin")
        assert status == 200 and '"signature_count"' in count
        status, headers, _ = browser.request(SIGN, {k: VALID[k] for k in ("name", "email", "country")})
        assert status == 303 and headers["Location"] == "/petitions/vadim-kuramshin/thanks/"
        served = time.monotonic() - started
        assert served < 10, f"served in {served:.1f} s"  # liveness, not speed
        print(f"\n{len(slow.sockets)} slow clients ({slow.lines} lines each so far, {held} sockets open in the "
              f"server): home page, count and signing served in {served:.2f} s")
    finally:
        slow.close()
    server.assert_serving()


# ---------------------------------------------------------------- oversized bodies


def test_a_declared_length_over_the_limit_is_refused_before_any_of_the_body(server):
    sock = server.connect()
    with sock:
        sock.sendall(post_head("Content-Length: 10000000"))  # 10 MB declared, not a byte of it sent
        response = read_response(sock)
    assert status_of(response) == 413
    server.assert_serving()


def test_a_body_of_the_services_own_limit_still_reaches_the_service(server):
    """The server's limit is not below the service's: a body of exactly MAX_REQUEST_BYTES is the service's
    to judge (here a comment far too long, refused by the form, not by the server)."""
    body = urllib.parse.urlencode({**VALID, "comment": ""}).encode()
    body += b"x" * (MAX_REQUEST_BYTES - len(body))
    sock = server.connect()
    with sock:
        sock.sendall(post_head(f"Content-Length: {len(body)}\r\nConnection: close") + body)
        response = read_response(sock)
    assert status_of(response) == 422 and b'role="alert"' in response  # the form's own error summary


def test_a_chunked_body_is_cut_at_the_limit(server):
    """Chunks sent a few kilobytes at a time, paced so that what the server has read is close to what was
    sent: the server answers 413 (or resets the connection) once it has read about its limit, and reads no
    more."""
    sock = server.connect()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    chunk = b"1000\r\n" + b"x" * 0x1000 + b"\r\n"
    sock.sendall(post_head("Transfer-Encoding: chunked"))
    sent = 0
    answered = b""
    cut = None
    deadline = time.monotonic() + 20
    with sock:
        while time.monotonic() < deadline:
            if select.select([sock], [], [], 0)[0]:
                answered = read_response(sock)
                cut = "answered"
                break
            try:
                sock.sendall(chunk)
            except (ConnectionResetError, BrokenPipeError):
                cut = "reset"
                break
            except socket.timeout:
                cut = "stopped reading"  # neither answered nor closed: the body is left unread
                break
            sent += len(chunk)
            time.sleep(0.002)
        else:
            pytest.fail(f"the server read {sent} bytes of a chunked body without cutting it")
        if cut == "stopped reading":
            answered = read_response(sock, 5)
    first_line = answered.split(b"\r\n")[0].decode("latin-1")
    print(f"\nchunked body: {sent} bytes sent (limit {MAX_REQUEST_BYTES}) before the server {cut} {first_line}")
    assert cut != "stopped reading" or answered, "the server stopped reading, but neither answered nor closed"
    if answered:  # a reset may have overtaken the answer
        assert status_of(answered) == 413
    assert sent <= MAX_REQUEST_BYTES + 1024 * 1024  # what loopback buffers hold, not gigabytes
    server.assert_serving()


# ---------------------------------------------------------------- malformed requests

LONG = "a" * 300
MALFORMED = {
    # request target: statuses that fit
    "/assets/%00x.css": {400},
    "/petitions/%00/sign": {400},  # the service's path, read with GET: a page of the site
    "/organisers/%00": {400},
    "/about%0a/..": {400},
    "/about/%0d%0aX-Injected:%20yes": {400},
    f"/assets/{LONG}.css": {404},
    f"/{LONG}/": {404},
    f"/{LONG}": {404},
    "/" + "a/" * 2000: {404},
    "/" + "a/" * 20000: {431},  # over the server's header limit
    "/%2e%2e/%2e%2e/%2e%2e/etc/passwd": {404},
    "/assets/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd": {404},
    "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd": {404},
    "/assets/%c0%af..%c0%afindex.html": {404},
    "/assets/%ff%fe.css": {404},
    "/assets\\..\\..\\etc\\passwd": {404},
    "/assets/%5c..%5c..%5cetc%5cpasswd": {404},
    "/assets/\xff\xfe.css": {400, 404},  # raw bytes that are no UTF-8
}


def test_malformed_paths_are_answered_4xx_without_a_traceback(server):
    before = len(server.log().splitlines())
    for target, expected in MALFORMED.items():
        status = status_of(get(server, target))
        assert status in expected, f"{target[:60]}: {status}"
    time.sleep(1)  # whatever the requests made the server write is written by now
    log = server.log()
    assert "Traceback" not in log and "Exception while serving" not in log, log
    assert len(log.splitlines()) - before <= len(MALFORMED), log
    server.assert_serving()


def test_a_websocket_upgrade_of_a_service_path_is_refused_4xx(server):
    with server.connect() as sock:
        sock.sendall(b"GET /api/petitions HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\n")
        sock.settimeout(10)
        assert status_of(sock.recv(65536)) == 400  # the status line is in the first segment
    assert "Traceback" not in server.log()


REDIRECTS = {
    "/about": "/about/",
    "/about/../blog": "/blog/",
    "/x/..": "/",
    # Written back as they came, these would send a browser to another host ("/\\host", "///host").
    "/%5cevil.example/../about": "/about/",
    "/%2f%2fevil.example/../about": "/about/",
}


def test_folder_redirects_name_the_folder_found_never_what_the_client_wrote(server):
    for target, location in REDIRECTS.items():
        response = get(server, target)
        assert status_of(response) == 301, target
        assert f"\r\nLocation: {location}\r\n".encode() in response, (target, response[:300])
