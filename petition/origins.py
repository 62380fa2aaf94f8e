"""Cross-site requests refused by the browser's own signals, with no token and no session.

As Go 1.25's ``http.CrossOriginProtection`` does: a state-changing request is cross-site when the browser
says so in ``Sec-Fetch-Site`` (every current browser sends it), or, from an older browser that does not, when
its ``Origin`` names another host than the request's. A request with neither header did not come from a
browser page, so no visitor's browser can have been made to send it. Our own pages post from the same
origin (the site and the service share one, see ``embedded`` and ``deploy/nginx``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})  # "none": typed or bookmarked by the user


def cross_site(method: str, headers, host: str) -> bool:
    if method in SAFE_METHODS:
        return False
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in SAME_SITE_FETCHES
    origin = headers.get("Origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != host.lower()  # "null" (a sandboxed page) has no host


def refuse_cross_site() -> None:
    """``before_request``: a 403 that says what happened, before any form is read."""
    if cross_site(request.method, request.headers, request.host):
        abort(403, description="This form can only be sent from this site's own pages. Nothing was stored: "
                               "please open the petition on our site and send it from there.")
