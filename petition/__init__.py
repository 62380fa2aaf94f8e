"""Campaign Kazakhstan's petition service. ``gunicorn 'petition:create_app()'`` serves it.

The site build imports this package too (its MkDocs plugin, the sign form's template): the service, and
Flask with it, is imported only when an application is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the service (see ``petition.app.create_app``)."""
    from .app import create_app as make

    return make(test_config)


__all__ = ["create_app"]
