"""The production topology, for real: nginx (Debian's) with deploy/nginx/campaign.conf in front of gunicorn
started as deploy/systemd/petition-web.service starts it, on loopback, and a signature made through it."""

from __future__ import annotations

import http.client
import os
import re
import shlex
import shutil
import subprocess
import time
import sys
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from conftest import ROOT, SHIPPED_PETITIONS, Browser, free_port, need, wait_until_serving
from test_headers import assert_protected, kinds_of_page

pytestmark = pytest.mark.slow
DEPLOY = ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        need("nginx (Debian package nginx)")
    return found


def site_server_for_test(conf: str, port: int, upstream_port: int, site: Path, logs: Path) -> str:
    """The shipped server block, with only what a loopback test must change: no TLS, our ports and paths."""
    blocks = re.split(r"\n(?=server \{)", conf)
    https = next(b for b in blocks if "listen 443 ssl http2;" in b)
    upstream = blocks[0]
    https = re.sub(r"\n\s*(listen \[::\]:443 ssl http2;|ssl_certificate\S* [^\n]+;|add_header Strict-Transport-Security[^\n]+)",
                   "", https)
    https = https.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port};")
    text = upstream + "\n" + https
    text = text.replace("127.0.0.1:8001", f"127.0.0.1:{upstream_port}")
    text = text.replace("/srv/campaign/site", str(site))
    text = text.replace("/srv/campaign/deploy", str(DEPLOY))
    text = text.replace("/var/log/nginx/", f"{logs}/").replace("/var/cache/nginx/", f"{logs}/")
    directives = "\n".join(line.split("#")[0] for line in text.splitlines())
    assert "/srv/campaign" not in directives and "ssl" not in directives
    return text


def checked_nginx(nginx: str, conf: Path) -> None:
    """nginx's main file around ``conf/campaign.conf``, its paths in ``conf``, checked by nginx -t."""
    (conf / "nginx.conf").write_text(f"""
user root;
worker_processes 1;
pid {conf}/nginx.pid;
error_log {conf}/error.log;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    client_body_temp_path {conf}/body;
    proxy_temp_path {conf}/proxy;
    fastcgi_temp_path {conf}/fastcgi;
    uwsgi_temp_path {conf}/uwsgi;
    scgi_temp_path {conf}/scgi;
    include {conf}/campaign.conf;
}}
""")
    checked = subprocess.run([nginx, "-t", "-p", str(conf), "-c", str(conf / "nginx.conf")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def raw_headers(port: int, path: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None):
    """The status and every header line of an answer, repeated ones included."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        response.read()
        return response.status, response.headers.get_all
    finally:
        connection.close()


def gunicorn_command(port: int) -> list[str]:
    """ExecStart of the shipped unit, pointed at this virtual environment and port."""
    unit = (DEPLOY / "systemd" / "petition-web.service").read_text(encoding="utf-8")
    command = shlex.split(re.search(r"^ExecStart=(.+)$", unit, re.MULTILINE).group(1))
    command[0] = str(VENV_BIN / Path(command[0]).name)
    return [part.replace("127.0.0.1:8001", f"127.0.0.1:{port}") for part in command]


def test_signing_through_nginx_and_gunicorn(tmp_path, built_site):
    nginx = nginx_binary()
    web_port, app_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETITION_")}
    env.update({
        "PETITION_INSTANCE_PATH": str(tmp_path / "instance"),
        "PETITION_SECRET_KEY": "a secret for this test only",
        "PETITION_SITE_DIR": str(built_site),
        "PETITION_PETITIONS_DIR": str(SHIPPED_PETITIONS),
        "PETITION_BASE_URL": base,
        "PETITION_TRUSTED_PROXIES": "1",
        "PETITION_COUNT_CACHE_SECONDS": "0",
        "PETITION_COUNT_MAX_AGE": "1",  # how long nginx keeps the pages' live parts
    })
    unit = (DEPLOY / "systemd" / "petition-web.service").read_text(encoding="utf-8")
    for pre in re.findall(r"^ExecStartPre=\S+/petition (.+)$", unit, re.MULTILINE):
        subprocess.run([str(VENV_BIN / "petition"), *pre.split()], env=env, cwd=tmp_path, check=True,
                       capture_output=True)

    conf = tmp_path / "nginx"
    conf.mkdir()
    (conf / "campaign.conf").write_text(site_server_for_test(
        (DEPLOY / "nginx" / "campaign.conf").read_text(encoding="utf-8"), web_port, app_port, built_site, conf))
    checked_nginx(nginx, conf)

    web_output = ""  # what gunicorn wrote, read once it has stopped
    web = subprocess.Popen(gunicorn_command(app_port), env=env, cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proxy = subprocess.Popen([nginx, "-p", str(conf), "-c", str(conf / "nginx.conf"), "-g", "daemon off;"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        browser = Browser(base)
        wait_until_serving(browser, "/", proxy)
        wait_until_serving(Browser(f"http://127.0.0.1:{app_port}"), "/api/petitions", web)

        status, headers, home = browser.request("/")
        assert status == 200 and "Solidarity with Kazakhstan" in home
        assert headers["X-Content-Type-Options"] == "nosniff"
        status, _, page = browser.request("/petitions/vadim-kuramshin/")
        assert status == 200 and 'action="/petitions/vadim-kuramshin/sign"' in page  # included by nginx
        assert "<!--#" not in page and "<strong data-petition-number>0</strong>" in page
        status, headers, _ = browser.request("/organisers/")
        assert status == 302 and "/organisers/login" in headers["Location"]  # the service's, and closed
        status, _, missing = browser.request("/no/such/page/")
        assert status == 404 and "Page not found" in missing

        # The sign page is the site's, served by nginx, even at the address the form posts to.
        browser = Browser(base)  # a visitor's browser: nothing of the organisers' area in it
        status, headers, _ = browser.request("/petitions/vadim-kuramshin/sign")
        assert status == 301 and headers["Location"].endswith("/petitions/vadim-kuramshin/sign/")
        status, headers, form = browser.request("/petitions/vadim-kuramshin/sign/")
        assert status == 200 and 'action="/petitions/vadim-kuramshin/sign"' in form
        assert "Set-Cookie" not in headers and "csrf_token" not in form
        signer = {"name": "Ekaterina", "email": "ekaterina@example.org", "country": "KZ", "postcode": "+7 727"}
        status, _, refused = browser.request("/petitions/vadim-kuramshin/sign", signer,
                                             {"Sec-Fetch-Site": "cross-site"})
        assert status == 403 and "only be sent from this site" in refused
        status, headers, _ = browser.request("/petitions/vadim-kuramshin/sign", signer)
        assert status == 303 and headers["Location"] == "/petitions/vadim-kuramshin/thanks/"
        assert "Set-Cookie" not in headers
        status, _, thanks = browser.request(headers["Location"])
        assert status == 200 and "Check your e-mail" in thanks

        sent = subprocess.run([str(VENV_BIN / "petition"), "send-mail"], env=env, cwd=tmp_path,
                              capture_output=True, text=True)
        assert "sent 1, failed 0" in sent.stdout
        [eml] = (tmp_path / "instance" / "outbox").glob("*.eml")
        text = message_from_bytes(eml.read_bytes(), policy=policy.default).get_body(("plain",)).get_content()
        confirm = re.search(rf"{re.escape(base)}(/petitions/vadim-kuramshin/confirm/\S+)", text).group(1)
        status, _, shown = browser.request(confirm)
        assert status == 200 and "Ekaterina" in shown and "+7 727" in shown
        status, _, _ = browser.request(confirm, {})
        assert status == 303
        assert list(browser.cookies) == []  # the whole path left nothing in the browser

        status, headers, body = browser.request("/api/petitions/vadim-kuramshin")
        assert status == 200 and '"signature_count":1' in body
        # Once the live parts nginx kept expire (1 s here), the next readers see the new count: the first
        # one after expiry may still get the old part while nginx fetches the new one in the background.
        one = re.compile(r"<strong data-petition-number>1</strong>\s*<span data-petition-noun>signature</span>")
        for path in ("/", "/petitions/vadim-kuramshin/"):
            deadline = time.monotonic() + 5
            while not one.search(browser.request(path)[2]):
                assert time.monotonic() < deadline, f"{path} still shows the old count"
                time.sleep(0.3)
        assert headers["Access-Control-Allow-Origin"] == "*"

        # Each protective header once, on what nginx serves itself and on what it passes on.
        for kind, path in {**kinds_of_page(built_site), "confirmed page": confirm}.items():
            status, lists = raw_headers(web_port, path)
            assert status < 500, (kind, status)
            assert_protected(kind, lambda name: lists(name) or [])
            assert len(lists("Strict-Transport-Security") or []) == 1, kind
        # nginx's own refusals, and a Range past the end of a file (ignored: the whole file), alike.
        for kind, method, path, extra, body, expected in (
                ("body over 64k", "POST", "/organisers/login", {}, b"x" * 70 * 1024, 413),
                ("10 KB URI", "GET", "/" + "a" * 10 * 1024, {}, None, 414),
                ("20 KB header", "GET", "/", {"X-Padding": "b" * 20 * 1024}, None, 400),
                ("range past the end", "GET", "/assets/logo.svg", {"Range": "bytes=99999-"}, None, 200)):
            status, lists = raw_headers(web_port, path, method, extra, body)
            assert status == expected, (kind, status)
            assert_protected(kind, lambda name: lists(name) or [])
            assert len(lists("Strict-Transport-Security") or []) == 1, kind
        assert lists("Cache-Control") == ["public, max-age=3600"] and not lists("Content-Range")

        web.terminate()  # the service down: nginx answers for it, and writes its error log
        web_output = web.communicate(timeout=10)[0]
        assert browser.request(confirm)[0] == 502
        status, lists = raw_headers(web_port, confirm)  # nginx's own answer for the service
        assert status == 502 and lists("Retry-After") == ["30"]
        assert_protected("service away", lambda name: lists(name) or [])
        status, headers, away = browser.request("/petitions/vadim-kuramshin/sign", signer)
        assert status == 502 and "try again in a minute" in away and "frame-ancestors" in headers["Content-Security-Policy"]
        # The pages still read well: nginx includes the last live parts it kept, not an error.
        status, _, page = browser.request("/petitions/vadim-kuramshin/")
        assert status == 200 and "<strong data-petition-number>1</strong>" in page and "unavailable" not in page
    finally:
        proxy.terminate()
        web.terminate()
        proxy.communicate(timeout=10)
        web_output += web.communicate(timeout=10)[0] or ""
    # No log names a visitor: neither the service's (gunicorn's lines included) nor nginx's.
    nginx_logs = "".join(path.read_text(encoding="utf-8") for path in conf.glob("*.log"))
    token = confirm.rsplit("/", 1)[1]
    for log in (web_output, nginx_logs):
        assert "ekaterina@example.org" not in log and token not in log and "client:" not in log
    assert "Booting worker" in web_output  # gunicorn's own lines are kept


def test_the_shipped_configuration_is_valid_for_this_nginx_with_tls_as_written(tmp_path, built_site):
    """The whole file, TLS and HTTP/2 included, as nginx -t reads it: only names, paths and ports replaced."""
    nginx = nginx_binary()
    openssl = shutil.which("openssl")
    if openssl is None:
        need("openssl (Debian package openssl)")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    text = (DEPLOY / "nginx" / "campaign.conf").read_text(encoding="utf-8")
    text = re.sub(r"/etc/letsencrypt/live/campaign.example/fullchain.pem", str(tmp_path / "cert.pem"), text)
    text = re.sub(r"/etc/letsencrypt/live/campaign.example/privkey.pem", str(tmp_path / "key.pem"), text)
    text = text.replace("/srv/campaign/site", str(built_site)).replace("/srv/campaign/deploy", str(DEPLOY))
    text = text.replace("/srv/campaign/acme", str(tmp_path)).replace("/var/log/nginx/", f"{tmp_path}/")
    text = text.replace("/var/cache/nginx/", f"{tmp_path}/")
    text = re.sub(r"listen (\[::\]:)?(80|443)", lambda m: f"listen 127.0.0.1:{free_port()}", text)
    (tmp_path / "campaign.conf").write_text(text)
    checked_nginx(nginx, tmp_path)
