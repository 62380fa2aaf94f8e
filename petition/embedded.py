"""The embedded default's one origin: the built site and the service from a single WSGI application.

In production nginx does this split (``deploy/nginx.conf``); here every path the service routes goes to
Flask and everything else, the sign page at the path the form posts to included, is a file of the built
site, with ``index.html`` for folders and the site's ``404.html`` for the rest.
"""

from __future__ import annotations

import io
import logging
import mimetypes
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote
from wsgiref.util import FileWrapper

from flask import Flask
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Request, Response

from .headers import SecurityHeaders

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# The subset of nginx's server-side includes the site's pages use (``ssi on`` in deploy/nginx/campaign.conf):
# ``include virtual`` with an optional ``stub``, the block shown when the service cannot give the part.
INCLUDE_MARK = b"<!--# "
_BLOCK = re.compile(rb'<!--# block name="([^"]+)" -->(.*?)<!--# endblock -->', re.DOTALL)
_INCLUDE = re.compile(rb'<!--# include virtual="(/[^"?]*)(?:\?([^"]*))?"(?: stub="([^"]+)")? -->')

# Connections the embedded server holds at once (waitress' default is 100).
CONNECTIONS = 1000
_RESERVED_FILES = 100  # descriptors kept for the database, logs, the outbox and the site's files


def server_settings(max_body: int) -> dict[str, Any]:
    """waitress' settings for ``petition serve``: up for everyone under slow and oversized clients.

    waitress reads every request in its one event loop and gives a worker thread only a complete request,
    so a client that sends slowly holds a socket and a buffer, never a thread: a few hundred of them used up
    the default limit of 100 connections, not the threads. The limit can be ten times that, with silent
    connections closed soon and each one's headers and body bounded. One address can still take all of
    them; facing the internet, the embedded run belongs behind a proxy that bounds connections per address.
    """
    return {
        "connection_limit": _connection_limit(CONNECTIONS),
        "asyncore_use_poll": True,  # select() cannot watch descriptors numbered 1024 and above
        # A connection with nothing received or sent for this long is closed (looked at every cleanup_interval):
        # idle keep-alive connections and stalled clients give back their place within half a minute.
        "channel_timeout": 20,
        "cleanup_interval": 5,
        # nginx's default for a request's header lines (4 x 8 KiB): what one slow client can make us hold.
        "max_request_header_size": 32 * 1024,
        # Refused with 413 from Content-Length before a byte of the body is read, and a chunked body cut
        # once this much has come in: the service's own limit (waitress refuses from this size on, hence +1).
        "max_request_body_size": max_body + 1,
    }


def _connection_limit(wanted: int) -> int:
    """``wanted``, raising the soft limit of open files if the system allows; else as many as it allows. A
    connection is one descriptor, two while its answer overflows to a temporary file; at the files limit
    waitress' accept() would fail on every turn of its loop."""
    try:
        import resource
    except ImportError:  # not a Unix: the platform's own limits apply
        return wanted
    needed = 2 * wanted + _RESERVED_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    allowed = max(1, (soft - _RESERVED_FILES) // 2)
    logging.getLogger(__name__).warning("%d connections at most: the system allows %d open files", allowed, soft)
    return allowed


def site_and_service(app: Flask, site_dir: Path):
    # ``site_dir`` is followed on every request: ``petition publish`` swaps a new build in behind its name.
    # The site's files get the protective headers the service's answers already carry (its own middleware).
    files = SecurityHeaders(app, lambda environ, start_response: _static(Request(environ), site_dir, app)(
        environ, start_response))

    def application(environ, start_response):
        try:
            app.url_map.bind_to_environ(environ).match()
        except NotFound:
            return files(environ, start_response)
        except MethodNotAllowed:
            # A path the service takes posts at, read with GET: a page of the site (the sign page).
            if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
                return files(environ, start_response)
        except RequestRedirect:
            pass  # the service's own path: it answers these itself
        except HTTPException:
            pass  # a request the map refuses (a WebSocket upgrade): the service answers it with its error page
        return app(environ, start_response)

    return application


def _static(request: Request, site_dir: Path, app: Flask) -> Response:
    if request.method not in ("GET", "HEAD"):
        return Response("Method not allowed", 405, {"Allow": "GET, HEAD"})
    if _CONTROL.search(request.path):  # no URL of the site holds one (nor can a file name hold NUL)
        return Response("Bad request", 400, mimetype="text/plain")
    try:
        site_dir = site_dir.resolve()  # this request's build, whole, even if a new one is swapped in meanwhile
        path = (site_dir / request.path.lstrip("/")).resolve()
        if site_dir not in path.parents and path != site_dir:
            return _not_found(site_dir)
        if path.is_dir():
            if not request.path.endswith("/"):
                # Named from the folder found, not from the request: nothing the client wrote is sent back.
                folder = path.relative_to(site_dir).as_posix()
                return Response("", 301, {"Location": "/" if folder == "." else quote(f"/{folder}/")})
            path = path / "index.html"
        if not path.is_file():
            return _not_found(site_dir)
        file = path.open("rb")
        stat = os.fstat(file.fileno())
    except (OSError, ValueError):
        # A name no file of the site can have (a segment longer than the system allows, a loop of links, an
        # encoding the file system refuses): there is no such page.
        return _not_found(site_dir)
    mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if mimetype == "text/html":
        with file:
            page = file.read()
        if INCLUDE_MARK in page:  # the live parts are the service's: the page is no longer one file's bytes
            response = Response(include(page, app, request.environ), mimetype=mimetype)
            response.headers["Cache-Control"] = "no-cache"
            return response
        file = io.BytesIO(page)
    response = Response(FileWrapper(file), mimetype=mimetype, direct_passthrough=True)
    response.content_length = stat.st_size
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"  # revalidate: editors rebuild the site at any time
    response.last_modified = stat.st_mtime
    return response.make_conditional(request)


def include(page: bytes, app: Flask, environ: dict) -> bytes:
    """The page with each include replaced by the service's answer to a GET of its path, as nginx does it."""
    blocks: dict[bytes, bytes] = {}

    def keep(match: re.Match) -> bytes:
        blocks[match.group(1)] = match.group(2)
        return b""

    def answer(match: re.Match) -> bytes:
        path, query, stub = match.group(1), match.group(2) or b"", match.group(3)
        part = Response.from_app(app, {**environ, "REQUEST_METHOD": "GET", "PATH_INFO": path.decode("latin-1"),
                                       "QUERY_STRING": query.decode("latin-1"), "CONTENT_LENGTH": "0",
                                       "wsgi.input": io.BytesIO()})
        body = part.get_data() if part.status_code == 200 else b""
        return body or blocks.get(stub, b"")

    return _INCLUDE.sub(answer, _BLOCK.sub(keep, page))


def _not_found(site_dir: Path) -> Response:
    page = site_dir / "404.html"
    body = page.read_bytes() if page.is_file() else b"Not found"
    return Response(body, 404, mimetype="text/html")
