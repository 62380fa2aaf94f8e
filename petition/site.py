"""The MkDocs side of the petitions, kept thin: what the theme's templates cannot do themselves.

The petition's own page carries its declaration in its front matter, and the overrides render its card from
there (``page.meta``). This plugin only adds what no page holds: each petition's sign page
(``/petitions/<slug>/sign/``) and thanks page, generated with the same fields in their front matter, and the
list of petitions and latest posts for the home and index pages. The live parts (count, state, the form while
open) are the service's, included by the server (see ``embedded.include``). Declarations are checked by
``petition publish`` before any build; the plugin checks them again through the same module only so that a
bare ``mkdocs build`` names a bad file and field too. It imports nothing of Flask or of the service.
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

from . import pages
from .declarations import Declaration, DeclarationError, load_folder

LATEST_POSTS = 5


class PetitionPluginConfig(Config):
    folder = config_options.Type(str, default="petitions")  # inside docs_dir
    posts = config_options.Type(str, default="blog/posts")  # inside docs_dir


def card(declaration: Declaration, page_url: str | None) -> dict[str, Any]:
    """A petition's declared fields, as its own page's front matter holds them, and the address of that page."""
    return {
        "slug": declaration.slug,
        "title": declaration.title,
        "target": declaration.target,
        "summary": declaration.summary,
        "goal": declaration.goal,
        "opens": declaration.opens.isoformat(),
        "closes": declaration.closes.isoformat(),
        "page_url": page_url,
    }


def generated_page(kind: str, title: str, petition: dict[str, Any], body: str = "") -> str:
    """A page of a petition's own (``kind``: sign or thanks): the card's fields in its front matter (JSON is
    YAML), nothing for search to index."""
    meta = {"title": title, "petition_page": kind, "petition": petition, "search": {"exclude": True}}
    return f"---\n{json.dumps(meta, ensure_ascii=False)}\n---\n\n{body}\n"


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
        self.petitions: list[dict[str, Any]] = []
        for declaration in declarations:
            src_uri = Path(declaration.path).relative_to(config["docs_dir"]).as_posix()
            page_file = files.get_file_from_path(src_uri)
            shown = card(declaration, page_file.url if page_file else None)
            self.petitions.append(shown)
            generated = {
                "sign": (f"Sign: {declaration.title}", ""),
                # The thanks words are the service's own template: the same text as an answer sent in place.
                "thanks": ("Check your e-mail", f'<div data-petition-result-page>'
                                                f"{pages.thanks_html(declaration.title)}</div>"),
            }
            for kind, (title, body) in generated.items():
                uri = f"{self.config.folder}/{declaration.slug}/{kind}.md"
                if files.get_file_from_path(uri):
                    raise PluginError(f"{uri}: the petition {declaration.slug} has a {kind} page of its own")
                files.append(File.generated(config, uri, inclusion=InclusionLevel.NOT_IN_NAV,
                                            content=generated_page(kind, title, shown, body)))
        today = date.today().isoformat()
        # Open and coming petitions first, the soonest to close first; the live part says what each is now.
        self.petitions.sort(key=lambda p: (p["closes"] < today, p["closes"]))
        self.posts: list = []
        return files

    def on_page_markdown(self, markdown, *, page, config, files):
        if page.file.src_uri.startswith(self.config.posts + "/"):
            self.posts.append(page)
        return markdown

    def on_page_context(self, context, *, page, config, nav):
        today = date.today().isoformat()
        context["petitions"] = self.petitions
        context["current_petitions"] = [p for p in self.petitions if p["closes"] >= today]
        context["latest_posts"] = sorted(self.posts, key=post_date, reverse=True)[:LATEST_POSTS]
        context["is_post"] = page in self.posts
        return context
