"""One look: the service's pages wear the built site's own page frame.

``mkdocs build`` renders ``service-shell/index.html`` (``overrides/service-shell.html``): a full site page
with the header, navigation, styles and scripts, and two markers where the service puts a page title and
its content. This module turns that page into the Jinja template ``base.html`` that every service template
extends. Without a built site the package's plain ``templates/base.html`` is used instead.

The shell lives at ``/service-shell/`` but is served at other paths, so its relative URLs are made absolute.
Its inline scripts (Material's) are allowed by hash in the Content-Security-Policy, never by 'unsafe-inline'.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from posixpath import normpath
from urllib.parse import urljoin, urlsplit

from flask import Flask, request
from jinja2 import BaseLoader, ChoiceLoader, TemplateNotFound

SHELL = "service-shell/index.html"
SHELL_URL = "/service-shell/"
TITLE_MARK = "<!--petition:title-->"
MAIN_MARK = "<!--petition:main-->"
URL_ATTRIBUTE = re.compile(r'\b(href|src|action)="([^"]*)"')
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
CANONICAL = re.compile(r'<link rel="canonical"[^>]*>\s*')
CONFIG_SCRIPT = re.compile(r'(<script id="__config" type="application/json">)(.*?)(</script>)', re.DOTALL)


@dataclass(frozen=True)
class Shell:
    template: str  # Jinja source of base.html
    script_hashes: tuple[str, ...]  # CSP sources for the shell's inline scripts


def wants_fragment() -> bool:
    """The site's script asks for a page's inner part only, to show it inside the page being read.

    A custom header cannot be sent cross-site without a CORS preflight, which the service never grants.
    """
    return request.headers.get("X-Petition-Fragment") == "1"


def absolute(url: str, base: str = SHELL_URL) -> str:
    """A URL of the shell made independent of the path the page is served at."""
    if not url or url.startswith(("#", "/", "data:", "mailto:")) or urlsplit(url).scheme:
        return url
    joined = urljoin(base, url)
    path, _, rest = joined.partition("#")
    normal = normpath(path) + ("/" if path.endswith("/") and normpath(path) != "/" else "")
    return normal + (f"#{rest}" if rest else "")


def convert(html: str) -> tuple[str, tuple[str, ...]]:
    """Shell page -> (Jinja template source, CSP hashes of its inline scripts)."""
    if TITLE_MARK not in html or MAIN_MARK not in html:
        raise ValueError(f"{SHELL} lacks the service markers; rebuild the site")
    html = CANONICAL.sub("", html)  # the shell's own address is no page's canonical one
    html = URL_ATTRIBUTE.sub(lambda m: f'{m.group(1)}="{absolute(m.group(2))}"', html)

    def fix_config(match: re.Match) -> str:  # Material's own base URL and search worker, made absolute
        config = json.loads(match.group(2))
        config["base"] = absolute(config.get("base", ".") + "/").rstrip("/") or "/"
        if config.get("search"):
            config["search"] = absolute(config["search"])
        return match.group(1) + json.dumps(config) + match.group(3)

    html = CONFIG_SCRIPT.sub(fix_config, html)
    hashes = tuple(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in INLINE_SCRIPT.findall(html)
    )
    before, _, rest = html.partition(TITLE_MARK)
    middle, _, after = rest.partition(MAIN_MARK)
    raw = lambda text: "{% raw %}" + text + "{% endraw %}"  # noqa: E731 - the shell is text, not Jinja
    template = (raw(before) + "{% block title %}{% endblock %}" + raw(middle)
                + "{% block main %}{% endblock %}" + raw(after))
    return template, hashes


def load(site_dir: Path) -> Shell | None:
    path = site_dir / SHELL
    if not path.is_file():
        return None
    return Shell(*convert(path.read_text(encoding="utf-8")))


class Frame:
    """The built site's frame as it is now: ``petition publish`` swaps a new build in behind ``site_dir``, and
    the next page any process renders wears it, no restart needed. Whether the shell's file changed is
    looked at (one ``stat``) at most once every ``LOOK_EVERY`` seconds."""

    LOOK_EVERY = 1.0

    def __init__(self, site_dir: Path) -> None:
        self.path = site_dir / SHELL
        self.lock = threading.Lock()
        self.identity: tuple | None = None
        self.shell: Shell | None = None
        self.looked = float("-inf")

    def current(self) -> Shell | None:
        now = time.monotonic()
        if now - self.looked < self.LOOK_EVERY:
            return self.shell
        with self.lock:
            if now - self.looked >= self.LOOK_EVERY:
                self._follow()
                self.looked = now
        return self.shell

    def _follow(self) -> None:
        try:
            stat = self.path.stat()  # through the link: a new build is a new file
            identity = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except OSError:
            identity = None
        if identity == self.identity:
            return
        try:
            shell = None if identity is None else Shell(*convert(self.path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            # A frame that cannot be read (a build being removed, a broken shell): keep serving the last one.
            logging.getLogger(__name__).warning("the site's frame was not reloaded: %s", error)
            return
        self.identity, self.shell = identity, shell


class FrameLoader(BaseLoader):
    """``base.html`` from the frame as it is now; the package's plain one while no site is built."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame

    def get_source(self, environment, template: str):
        shell = self.frame.current() if template == "base.html" else None
        if shell is None:
            raise TemplateNotFound(template)
        return shell.template, None, lambda: self.frame.current() is shell


def shell(app: Flask) -> Shell | None:
    """The frame the service's pages wear now (its inline scripts' hashes go into their policy)."""
    frame = app.extensions.get("petition.frame")
    return frame.current() if frame else None


def install(app: Flask) -> None:
    """Serve ``base.html`` from the built site's frame, followed across ``petition publish``."""
    frame = Frame(Path(app.config["SITE_DIR"]))
    app.extensions["petition.frame"] = frame
    app.jinja_loader = ChoiceLoader([FrameLoader(frame), app.jinja_loader])
    # Jinja asks a cached template whether it is still up to date only when auto_reload is on.
    app.jinja_env.auto_reload = True
