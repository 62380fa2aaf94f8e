"""Error pages: every refusal is a clear page (or JSON under /api), never a trace."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from werkzeug.exceptions import HTTPException, InternalServerError

from . import connections
from .extensions import db
from .layout import wants_fragment

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request could not be understood.",
    404: "There is nothing at this address.",
    405: "This page cannot be used that way.",
    413: "What you sent is too large. Please shorten it and try again.",
    429: "Too many signatures have come from your network in a short time. Please wait a while and try again.",
    503: "The petition service is busy for a moment. Nothing is lost: please try again in a minute.",
}
DATABASE_RETRY_AFTER = 10  # seconds: a lock is usually gone by then, and a person would not wait longer


def register(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(SQLAlchemyTimeout, _database_unavailable)
    app.register_error_handler(connections.DatabaseBusy, _database_unavailable)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _render(status: int, title: str, message: str) -> Response:
    if request.path.startswith("/api/"):
        body = jsonify({"error": title, "message": message, "status": status})
    else:
        fragment = wants_fragment()  # shown inside a site page
        body = render_template("_error.html" if fragment else "error.html", status=status, title=title,
                               message=message, fragment=fragment)
        if fragment:
            return make_response(body, status, {"X-Petition-Fragment": "1"})
    return make_response(body, status)


def _csrf_error(error: CSRFError):
    return _render(400, "Your form has expired",
                   "For your safety the form is valid only in the browser session that opened it. "
                   "Please go back, reload the page and send it again.")


def _http_error(error: HTTPException):
    status = error.code or 500
    described = error.description if error.description != type(error).description else None
    response = _render(status, error.name, described or MESSAGES.get(status, error.name))
    for header in ("Allow", "Retry-After"):  # keep what the exception says to clients
        if header in error.get_response().headers:
            response.headers[header] = error.get_response().headers[header]
    return response


def _database_unavailable(error: Exception):
    """Busy, locked or briefly unreachable: a 503 that says when to come back, never a trace."""
    # The endpoint, never the path: a link's path carries its token.
    log.warning("database unavailable: %s %s answered 503 (%s)", request.method, request.endpoint,
                type(error).__name__)
    try:
        db.session.rollback()
    except Exception:  # the connection itself may be gone
        pass
    response = _render(503, "Service busy", MESSAGES[503])
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response


def _unexpected_error(error: Exception):
    if isinstance(error, HTTPException):  # pragma: no cover - routed to _http_error first
        return _http_error(error)
    log.error("unexpected error: %s %s answered 500", request.method, request.endpoint, exc_info=error)
    return _render(500, InternalServerError().name,
                   "Something went wrong on our side. Please try again in a moment.")

