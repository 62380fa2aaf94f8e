"""The count API's finished responses, kept for ``COUNT_CACHE_SECONDS`` and answered in front of Flask.

A count is that fresh anyway, so while one is cached the process answers its URL as a caching proxy would:
the same status, headers and bytes that Flask produced, for the cost of a dictionary lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from flask import Flask, request

# Set by a view on the request's environ: the monotonic time until which its response may be reused.
REUSABLE_UNTIL = "petition.reusable-until"
# Conditional or partial requests take the full path: Flask answers them.
PASS_THROUGH = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_RANGE", "HTTP_IF_RANGE", "HTTP_IF_MATCH")


def reusable_until(until: float) -> None:
    request.environ[REUSABLE_UNTIL] = until


def kept(app: Flask) -> dict:
    return app.extensions.setdefault("petition.api-responses", {})


class ReusedResponses:
    """WSGI middleware around the whole service."""

    def __init__(self, app: Flask, wsgi_app: Callable) -> None:
        self.app, self.wsgi_app = app, wsgi_app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD") or environ.get("QUERY_STRING") or any(h in environ for h in PASS_THROUGH):
            return self.wsgi_app(environ, start_response)
        path = environ.get("PATH_INFO", "")
        hit = kept(self.app).get(path)
        if hit is not None and hit[0] > time.monotonic():
            start_response(hit[1], list(hit[2]))
            return [] if method == "HEAD" else [hit[3]]
        answered: list = []

        def remember(status: str, headers: list, exc_info=None):
            answered[:] = [status, headers]
            return start_response(status, headers, exc_info)

        body = self.wsgi_app(environ, remember)
        until = environ.get(REUSABLE_UNTIL)
        if (until is None or method == "HEAD" or not answered or not answered[0].startswith("200 ")
                or any(name.lower() == "set-cookie" for name, _ in answered[1])):
            return body
        try:
            content = b"".join(body)
        finally:
            getattr(body, "close", lambda: None)()
        kept(self.app)[path] = (until, answered[0], tuple(answered[1]), content)
        return [content]
