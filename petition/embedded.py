"""The embedded default's one origin: the built site and the service from a single WSGI application.

In production nginx does this split (``deploy/nginx.conf``); here every path the service routes goes to
Flask and everything else, the sign page at the path the form posts to included, is a file of the built
site, with ``index.html`` for folders and the site's ``404.html`` for the rest.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from wsgiref.util import FileWrapper

from flask import Flask
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Request, Response


def site_and_service(app: Flask, site_dir: Path):
    site_dir = site_dir.resolve()

    def application(environ, start_response):
        try:
            app.url_map.bind_to_environ(environ).match()
        except NotFound:
            return _static(Request(environ), site_dir)(environ, start_response)
        except MethodNotAllowed:
            # A path the service takes posts at, read with GET: a page of the site (the sign page).
            if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
                return _static(Request(environ), site_dir)(environ, start_response)
        except RequestRedirect:
            pass  # the service's own path: it answers these itself
        return app(environ, start_response)

    return application


def _static(request: Request, site_dir: Path) -> Response:
    if request.method not in ("GET", "HEAD"):
        return Response("Method not allowed", 405, {"Allow": "GET, HEAD"})
    path = (site_dir / request.path.lstrip("/")).resolve()
    if site_dir not in path.parents and path != site_dir:
        return _not_found(site_dir)
    if path.is_dir():
        if not request.path.endswith("/"):
            return Response("", 301, {"Location": request.path + "/"})
        path = path / "index.html"
    if not path.is_file():
        return _not_found(site_dir)
    mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    response = Response(FileWrapper(path.open("rb")), mimetype=mimetype, direct_passthrough=True)
    response.content_length = path.stat().st_size
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"  # revalidate: editors rebuild the site at any time
    response.last_modified = path.stat().st_mtime
    return response.make_conditional(request)


def _not_found(site_dir: Path) -> Response:
    page = site_dir / "404.html"
    body = page.read_bytes() if page.is_file() else b"Not found"
    return Response(body, 404, mimetype="text/html")
