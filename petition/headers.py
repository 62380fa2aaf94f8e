"""The protective headers every answer carries, the service's and, in the embedded run, the site's files.

nginx sends the same set for the files it serves itself (``deploy/nginx/headers.conf``), and adds nothing to
what it passes on from the service, so every header arrives once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import Flask

from . import layout

DEFAULTS = (
    ("X-Content-Type-Options", "nosniff"),
    # Links in e-mails carry tokens: never pass a URL on to another site (our own needs it for CSRF on HTTPS).
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),  # for browsers older than the policy's frame-ancestors
    ("Content-Security-Policy", None),  # the policy, which depends on the site's frame
)


def policy(script_hashes: tuple[str, ...] = ()) -> str:
    """The Content-Security-Policy for pages whose inline scripts have these hashes (the site frame's)."""
    scripts = " ".join(("'self'",) + script_hashes)
    return (f"default-src 'self'; script-src {scripts}; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


class SecurityHeaders:
    """WSGI middleware: the headers every answer carries, unless the view set its own, error pages included.

    Added to the plain list of header pairs that reaches the server: as an ``after_request`` hook, through
    werkzeug's ``Headers`` and the response's parsed content type, they cost far more per answer, two answers
    for every signer (see ``bench/``)."""

    def __init__(self, app: Flask, wsgi_app: Callable) -> None:
        self.app, self.wsgi_app = app, wsgi_app
        self.frame: tuple = (object(), ())  # a frame, and its headers for other answers and for pages

    def _for_frame(self) -> tuple[list, list]:
        """The defaults for the frame the pages are served in now (``petition publish`` may replace it)."""
        shell = layout.shell(self.app)
        if shell is not self.frame[0]:
            page_policy = policy(shell.script_hashes if shell else ())
            defaults = [(name.lower(), name, value if value is not None else page_policy)
                        for name, value in DEFAULTS]
            # Pages carry CSRF tokens and, behind links, a signer's own data: keep them out of every cache.
            self.frame = (shell, (defaults, [*defaults, ("cache-control", "Cache-Control", "no-store")]))
        return self.frame[1]

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        def start(status: str, headers: list, exc_info=None):
            present, html = set(), False
            for name, value in headers:
                name = name.lower()
                present.add(name)
                if name == "content-type":
                    html = value.split(";", 1)[0].strip().lower() == "text/html"
            missing = [(name, value) for lower, name, value in self._for_frame()[html] if lower not in present]
            return start_response(status, headers + missing, exc_info)

        return self.wsgi_app(environ, start)
