"""A petition's public paths on the one origin: which are pages of the built site, which the service takes."""

from __future__ import annotations


def sign_path(slug: str) -> str:
    """Where the sign form is posted: the service's only way in for a signer."""
    return f"/petitions/{slug}/sign"


def sign_page(slug: str) -> str:
    """The site's page with the sign form (served at ``sign_path`` too, for GET)."""
    return f"/petitions/{slug}/sign/"


def thanks_page(slug: str) -> str:
    """The site's page every signer is sent to after posting: nobody learns there who has signed."""
    return f"/petitions/{slug}/thanks/"
