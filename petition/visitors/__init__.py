"""Pages for visitors: sign, thanks, confirm, manage."""

from flask import Blueprint

bp = Blueprint("visitors", __name__)

from . import routes  # noqa: E402,F401  (registers the views on bp)
