"""The organisers' back office: login, dashboard, signer lists and counts, care work. Login required."""

from flask import Blueprint

bp = Blueprint("organisers", __name__, url_prefix="/organisers")

from . import routes  # noqa: E402,F401  (registers the views on bp)
