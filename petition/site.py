"""The MkDocs side of the petitions: a small plugin that validates the declarations and hands them to the theme.

It reads the declarations through ``declarations`` (the module the service uses), fails the build with the
file and field of a bad one, and puts plain data into the template context. Each petition also gets two
pages of its own: the full-page sign form (``/petitions/<slug>/sign/``) and the thanks page every signer is
sent to, with the form and the thanks text rendered from the service's templates (``pages``), so the
visitor's whole path but the POST is static. All other HTML is in the theme overrides (``overrides/``), so
moving to another static generator means moving templates, not logic.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

from mkdocs.config import config_options
from mkdocs.config.base import Config
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin
from mkdocs.structure.files import File, InclusionLevel

from . import pages, paths
from .declarations import Declaration, DeclarationError, load_folder

LATEST_POSTS = 5


class PetitionPluginConfig(Config):
    folder = config_options.Type(str, default="petitions")  # inside docs_dir
    posts = config_options.Type(str, default="blog/posts")  # inside docs_dir
    privacy_url = config_options.Type(str, default="/privacy/")  # the service's PETITION_PRIVACY_URL


def card(declaration: Declaration, page_url: str | None, today: date | None = None) -> dict[str, Any]:
    """What a template needs to show a petition: its declaration, its state on build day, its paths."""
    today = today or date.today()
    return {
        "slug": declaration.slug,
        "title": declaration.title,
        "target": declaration.target,
        "summary": declaration.summary,
        "goal": declaration.goal,
        "opens": declaration.opens,
        "closes": declaration.closes,
        "state": declaration.state(today),
        "page_url": page_url,
        "sign_path": paths.sign_path(declaration.slug),
        "sign_page": paths.sign_page(declaration.slug),
        "api_path": f"/api/petitions/{declaration.slug}",
    }


def _generated_page(title: str) -> str:
    """A page the theme fills from its petition's card: a title and nothing for search to index."""
    return f"---\ntitle: {json.dumps(title, ensure_ascii=False)}\nsearch:\n  exclude: true\n---\n"


def post_date(page) -> date:
    """A post's creation date, as Material's blog plugin reads it (``date`` or ``date.created``)."""
    value = page.meta.get("date")
    if isinstance(value, dict):
        value = value.get("created")
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)) if value else date.min


class PetitionPlugin(BasePlugin[PetitionPluginConfig]):
    def on_files(self, files, *, config):
        folder = Path(config["docs_dir"]) / self.config.folder
        try:
            declarations = load_folder(folder)
        except DeclarationError as error:
            raise PluginError(f"Bad petition declaration: {error}") from None
        self.cards: dict[str, dict[str, Any]] = {}
        self.kinds: dict[str, str] = {}  # src_uri -> "text" (the editors' page), "sign" or "thanks"
        for declaration in declarations:
            src_uri = Path(declaration.path).relative_to(config["docs_dir"]).as_posix()
            page_file = files.get_file_from_path(src_uri)
            shown = card(declaration, page_file.url if page_file else None)
            shown["form_html"] = pages.blank_form_html(declaration.slug, self.config.privacy_url)
            shown["thanks_html"] = pages.thanks_html(declaration.title)
            self.cards[src_uri], self.kinds[src_uri] = shown, "text"
            for kind, title in (("sign", f"Sign: {declaration.title}"), ("thanks", "Check your e-mail")):
                generated = f"{self.config.folder}/{declaration.slug}/{kind}.md"
                if files.get_file_from_path(generated):
                    raise PluginError(f"{generated}: the petition {declaration.slug} has a {kind} page of its own")
                files.append(File.generated(config, generated, inclusion=InclusionLevel.NOT_IN_NAV,
                                            content=_generated_page(title)))
                self.cards[generated], self.kinds[generated] = shown, kind
        self.posts: list = []
        return files

    def on_page_markdown(self, markdown, *, page, config, files):
        if page.file.src_uri.startswith(self.config.posts + "/"):
            self.posts.append(page)
        return markdown

    def on_page_context(self, context, *, page, config, nav):
        shown = [card for uri, card in self.cards.items() if self.kinds[uri] == "text"]  # each petition once
        open_first = sorted(shown, key=lambda c: (c["state"] != "open", c["closes"]))
        context["petitions"] = open_first
        context["petition"] = self.cards.get(page.file.src_uri)
        context["petition_page"] = self.kinds.get(page.file.src_uri)
        context["latest_posts"] = sorted(self.posts, key=post_date, reverse=True)[:LATEST_POSTS]
        context["is_post"] = page in self.posts
        return context
