"""The baselines the benchmarks compare against, served by the same gunicorn configuration.

``form_app``: the least a signing service can be with Flask and SQLAlchemy: a small form on GET, one row
inserted per POST, a 303. ``hello_app``: a hello-world JSON endpoint.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, redirect, request
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert

import petition.extensions  # noqa: F401  (the service's SQLite settings on every SQLite connection: see _engine)
from petition.connections import ping_when_idle

FORM = """<!doctype html><html lang="en"><title>Sign</title><form method="post">
<input name="csrf_token" type="hidden" value="baseline">
<input name="name"><input name="email"><input name="country"><button>Sign</button></form></html>"""

metadata = MetaData()
row = Table("signature", metadata, Column("id", Integer, primary_key=True), Column("name", String(100)),
            Column("email", String(254)), Column("country", String(2)))


def form_app() -> Flask:
    app = Flask(__name__)
    engine = _engine(os.environ["BASELINE_DATABASE_URL"])

    @app.route("/sign", methods=["GET", "POST"])
    def sign():
        if request.method == "GET":
            return FORM
        with engine.begin() as connection:
            connection.execute(insert(row).values(name=request.form["name"], email=request.form["email"],
                                                  country=request.form["country"]))
        return redirect("/thanks", code=303)

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
