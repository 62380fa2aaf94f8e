"""The application factory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, abort, request
from werkzeug.middleware.proxy_fix import ProxyFix

from . import cli, connections, errors, headers, inputs, intake, layout, origins, ratelimits, sessions, settings
from .extensions import csrf, db, login_manager

# A form post holds a few short fields; anything larger is refused before it is parsed.
MAX_REQUEST_BYTES = 64 * 1024


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the service. Settings come from ``PETITION_*`` variables; ``test_config`` overrides them."""
    config = settings.read_environment(os.environ)
    if test_config:
        config.update(test_config)
    instance = Path(config["INSTANCE_PATH"]).resolve()  # absolute: the CLI and Flask must agree
    settings.finish(config, instance)

    app = Flask(__name__, instance_path=str(instance))
    app.session_interface = sessions.SessionInterface()
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_REQUEST_BYTES,
        MAX_FORM_PARTS=100,
        JSON_SORT_KEYS=False,
        WTF_CSRF_TIME_LIMIT=None,  # the token is bound to the session; a signer may read for an hour first
        SQLALCHEMY_ENGINE_OPTIONS={},  # connections are checked after idle instead (see connections)
    )
    app.config.update(config)
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    options.setdefault("hide_parameters", True)  # a database error's text must not quote a signer's answers
    connections.bound_waits(uri, options, app.config["DB_WAIT_SECONDS"])  # then 503, within gunicorn's timeout
    # A sign form's POST writes one row, atomic by itself, on connections that are in autocommit from the
    # start: no BEGIN and COMMIT around it, and no switching of a pooled connection's mode.
    app.config.setdefault("SQLALCHEMY_BINDS", {})[intake.AUTOCOMMIT] = {
        **options, "url": uri, "isolation_level": "AUTOCOMMIT"}
    if app.config["TRUSTED_PROXIES"]:  # behind nginx: the client's scheme and host, as nginx saw them
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            connections.ping_when_idle(engine)
    app.before_request(origins.refuse_cross_site)  # first: nothing of a cross-site post is read
    app.before_request(_refuse_undecodable_forms)  # before CSRFProtect parses the form
    csrf.init_app(app)
    # Organisers' pages only: a signer's request never loads a user (nor touches the session for it).
    login_manager.init_app(app, add_context_processor=False)
    ratelimits.init_app(app)

    from .api import bp as api_bp
    from .api.responses import ReusedResponses
    from .organisers import bp as organisers_bp
    from .visitors.routes import bp as visitors_bp

    csrf.exempt(visitors_bp)  # visitors carry no token and have no session: see origins
    app.register_blueprint(visitors_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(organisers_bp)
    # Flask-Login looks at its remember-me cookie after every request; only organisers log in and out.
    app.after_request_funcs[None].remove(login_manager._update_remember_cookie)
    app.after_request_funcs.setdefault(organisers_bp.name, []).append(login_manager._update_remember_cookie)
    layout.install(app)
    errors.register(app)
    cli.register(app)
    app.wsgi_app = headers.SecurityHeaders(app, app.wsgi_app)  # type: ignore[method-assign]
    app.wsgi_app = ReusedResponses(app, app.wsgi_app)  # type: ignore[method-assign]
    return app


def _refuse_undecodable_forms() -> None:
    if request.mimetype == "application/x-www-form-urlencoded" and inputs.undecodable_form(request.get_data()):
        abort(400, description="The form held bytes that are not valid UTF-8 text. "
                               "Please type your details again and resend the form.")
