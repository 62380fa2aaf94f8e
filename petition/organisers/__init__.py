"""The organisers' back office: login, dashboard, signer lists and counts, care work. Login required."""

from flask import Blueprint
from flask_login import current_user

bp = Blueprint("organisers", __name__, url_prefix="/organisers")
bp.context_processor(lambda: {"current_user": current_user})

from . import routes  # noqa: E402,F401  (registers the views on bp)
