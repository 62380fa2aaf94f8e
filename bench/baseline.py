"""The baselines the benchmarks compare against, served by the same gunicorn configuration.

``form_app``: the least a signing service can be with Flask and SQLAlchemy: one row inserted per POST of the
sign form, a 303 to the thanks page. Its sign and thanks pages are the site's static files, served by the
same nginx as the service's. ``hello_app``: a hello-world JSON endpoint.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, redirect, request
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, create_engine, insert

import petition.extensions  # noqa: F401  (the service's SQLite settings on every SQLite connection: see _engine)
from petition.connections import ping_when_idle

metadata = MetaData()
row = Table("submission", metadata, Column("id", Integer, primary_key=True), Column("slug", String(80)),
            Column("name", String(100)), Column("email", String(254)), Column("country", String(2)),
            Column("postcode", String(40)), Column("comment", String(500)), Column("public", Boolean),
            Column("updates", Boolean))


def form_app() -> Flask:
    app = Flask(__name__)
    engine = _engine(os.environ["BASELINE_DATABASE_URL"])

    @app.post("/petitions/<slug>/sign")
    def sign(slug: str):
        form = request.form
        with engine.begin() as connection:
            connection.execute(insert(row).values(
                slug=slug, name=form["name"], email=form["email"], country=form["country"],
                postcode=form.get("postcode", ""), comment=form.get("comment", ""),
                public=form.get("public") == "y", updates=form.get("updates") == "y"))
        return redirect(f"/petitions/{slug}/thanks/", code=303)

    return app


def _engine(url: str):
    """The same engine settings as the service's: a writer waits up to 30 s for SQLite's lock, which runs in
    WAL mode with synchronous=NORMAL (else it would sync its log to disk at every commit), and a pooled
    connection is checked before use when it has been idle for a second."""
    options = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
    engine = create_engine(url, **options)
    ping_when_idle(engine)
    return engine


def create_schema(url: str) -> None:
    engine = _engine(url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    engine.dispose()


def hello_app() -> Flask:
    app = Flask(__name__)

    @app.get("/hello")
    def hello():
        return jsonify({"hello": "world"})

    return app
