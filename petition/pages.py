"""The parts of the signer's path that the built site carries, rendered from the service's own templates.

The sign form and the thanks text are pages of the site (static, the same for everyone, cacheable); the
service renders the same templates when it answers a post with errors or in place. Plain Jinja and a plain
WTForms form: no Flask application is needed at build time.
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from .paths import sign_path
from .visitors.forms import SignForm

_TEMPLATES = Environment(loader=PackageLoader("petition", "templates"), autoescape=select_autoescape())


def blank_form_html(slug: str, privacy_url: str) -> Markup:
    """The empty sign form, as the service renders it with errors."""
    return Markup(_TEMPLATES.get_template("_sign_form.html").render(
        form=SignForm(), action=sign_path(slug), privacy_url=privacy_url))


def thanks_html(title: str) -> Markup:
    """The thanks text, as the service answers a post sent in place."""
    return Markup(_TEMPLATES.get_template("_thanks.html").render(petition={"title": title}, fragment=False))
