"""Campaign Kazakhstan's petition service. ``gunicorn 'petition:create_app()'`` serves it."""

from .app import create_app

__all__ = ["create_app"]
