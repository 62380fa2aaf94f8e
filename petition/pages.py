"""The thanks page's words, rendered at build time from the service's own template.

The service answers a form sent in place with the same template, so a signer reads the same text either way.
Plain Jinja: the site build imports nothing of Flask or of the service.
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

_TEMPLATES = Environment(loader=PackageLoader("petition", "templates"), autoescape=select_autoescape())


def thanks_html(title: str) -> Markup:
    """The thanks text, as the service answers a post sent in place."""
    return Markup(_TEMPLATES.get_template("_thanks.html").render(petition={"title": title}, fragment=False))
