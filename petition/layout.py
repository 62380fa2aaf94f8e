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
import re
from dataclasses import dataclass
from pathlib import Path
from posixpath import normpath
from urllib.parse import urljoin, urlsplit

from flask import Flask, request
from jinja2 import ChoiceLoader, DictLoader

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


def install(app: Flask) -> None:
    """Serve ``base.html`` from the built site's frame when there is one.

    Read once at start: after rebuilding the site, reload the service (``systemctl reload petition-web``)
    so that its pages, and the script hashes their policy allows, follow the new frame together.
    """
    shell = load(Path(app.config["SITE_DIR"]))
    if shell is not None:
        app.jinja_loader = ChoiceLoader([DictLoader({"base.html": shell.template}), app.jinja_loader])
    app.extensions["petition.shell"] = shell
