"""Petition declarations: the front matter of the Markdown pages in ``docs/en/petitions/``.

Editors declare a petition once, in the page that carries its text. The site build and the service both read
it through this module, so a declaration that one accepts the other cannot refuse. It depends on nothing but
PyYAML, so a site build can use it without the service's dependencies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.DOTALL)

# The required text fields and the longest each may be.
TEXT_FIELDS = {"slug": 80, "title": 200, "target": 200, "summary": 500}


class _TextDatesLoader(yaml.SafeLoader):
    """Leaves dates as text, so that an impossible date is reported against its field, not as a crash."""


_TextDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class DeclarationError(ValueError):
    """A declaration that cannot be used; ``str()`` names the file and the field."""

    def __init__(self, path: Path | str, field: str | None, message: str) -> None:
        self.path = str(path)
        self.field = field
        self.message = message
        where = f"{self.path}: field '{field}'" if field else self.path
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Declaration:
    slug: str
    title: str
    target: str
    summary: str
    goal: int
    opens: date
    closes: date
    body: str
    path: str

    def state(self, today: date) -> str:
        """'open', 'not_open' or 'closed' on the given day (both ends are signing days)."""
        if today < self.opens:
            return "not_open"
        if today > self.closes:
            return "closed"
        return "open"


def split_front_matter(text: str) -> tuple[str | None, str]:
    """Return the YAML between the opening ``---`` lines and the Markdown after them."""
    text = text.lstrip("\ufeff")
    match = FRONT_MATTER.match(text)
    if not match:
        return None, text
    return match.group(1) or "", text[match.end():]


def parse(text: str, path: Path | str) -> Declaration:
    """Validate one page's declaration; raise ``DeclarationError`` naming the first bad field."""
    raw, body = split_front_matter(text)
    if raw is None:
        raise DeclarationError(path, None, "no front matter: the page must start with a '---' block")
    try:
        meta = yaml.load(raw, Loader=_TextDatesLoader) or {}
    except yaml.YAMLError as error:
        raise DeclarationError(path, None, f"front matter is not valid YAML ({error})") from None
    if not isinstance(meta, dict):
        raise DeclarationError(path, None, "front matter must be a mapping of fields")

    values: dict[str, Any] = {}
    for field, longest in TEXT_FIELDS.items():
        value = meta.get(field)
        if not isinstance(value, str) or not value.strip():
            raise DeclarationError(path, field, "is required and must be text")
        value = " ".join(value.split())
        if len(value) > longest:
            raise DeclarationError(path, field, f"is {len(value)} characters long; at most {longest} allowed")
        values[field] = value
    if not SLUG.match(values["slug"]):
        raise DeclarationError(path, "slug", "use lower-case letters, digits and single hyphens only")

    goal = meta.get("goal")
    if isinstance(goal, bool) or not isinstance(goal, int) or goal <= 0:
        raise DeclarationError(path, "goal", "must be a positive whole number of signatures")
    for field in ("opens", "closes"):
        try:
            values[field] = date.fromisoformat(str(meta.get(field)))
        except ValueError:
            written = str(meta.get(field))
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", written):  # well written, but no such day
                raise DeclarationError(path, field, f"{written} is not a day of the calendar") from None
            raise DeclarationError(path, field, "must be a date written as YYYY-MM-DD") from None
    if values["closes"] < values["opens"]:
        raise DeclarationError(path, "closes", "is before the opening date")
    if not body.strip():
        raise DeclarationError(path, None, "the page has no petition text below the front matter")
    return Declaration(goal=goal, body=body.strip() + "\n", path=str(path), **values)


def load_file(path: Path) -> Declaration:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DeclarationError(path, None, f"not valid UTF-8 ({error.reason} at byte {error.start})") from None
    return parse(text, path)


def load_folder(folder: Path | str) -> list[Declaration]:
    """Every declaration in a folder (its ``index.md`` is the listing page, not a petition), slugs unique."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DeclarationError(folder, None, "petitions folder not found")
    found: dict[str, Declaration] = {}
    for path in sorted(folder.glob("*.md")):
        if path.name == "index.md":
            continue
        declaration = load_file(path)
        if declaration.slug in found:
            # The file changed last is the one an editor is working on: name it, and the other as the owner.
            earlier = Path(found[declaration.slug].path)
            changed, other = (path, earlier) if path.stat().st_mtime >= earlier.stat().st_mtime else (earlier, path)
            raise DeclarationError(changed, "slug", f"'{declaration.slug}' is already used by {other}")
        found[declaration.slug] = declaration
    return list(found.values())
