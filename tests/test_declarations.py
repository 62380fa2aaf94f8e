"""Petition declarations: the shipped one is valid, and every bad field is refused by file and field."""

import os
from datetime import date
from pathlib import Path

import pytest

from petition.declarations import DeclarationError, load_file, load_folder, parse

from conftest import SHIPPED_PETITIONS

GOOD = {
    "slug": "free-them",
    "title": "Free them",
    "target": "The Prosecutor General",
    "summary": "Release the jailed oil workers.",
    "goal": "500",
    "opens": "2026-01-01",
    "closes": "2026-12-31",
}


def page(body: str = "The petition text.\n", **changes) -> str:
    fields = {**GOOD, **changes}
    lines = [f"{k}: {v}" for k, v in fields.items() if v is not None]
    return "---\n" + "\n".join(lines) + "\n---\n\n" + body


def test_a_good_declaration_is_read_whole():
    declaration = parse(page(), "free-them.md")
    assert declaration.slug == "free-them"
    assert declaration.goal == 500
    assert declaration.opens == date(2026, 1, 1) and declaration.closes == date(2026, 12, 31)
    assert declaration.body == "The petition text.\n"
    assert declaration.state(date(2026, 6, 1)) == "open"
    assert declaration.state(date(2025, 12, 31)) == "not_open"
    assert declaration.state(date(2027, 1, 1)) == "closed"


@pytest.mark.parametrize("changes, field, words", [
    ({"slug": None}, "slug", "required"),
    ({"slug": "Free Them"}, "slug", "lower-case"),
    ({"slug": "free--them"}, "slug", "lower-case"),
    ({"title": None}, "title", "required"),
    ({"title": "x" * 201}, "title", "at most 200"),
    ({"target": "''"}, "target", "required"),
    ({"summary": "[a, b]"}, "summary", "must be text"),
    ({"goal": None}, "goal", "positive whole number"),
    ({"goal": "0"}, "goal", "positive whole number"),
    ({"goal": "-5"}, "goal", "positive whole number"),
    ({"goal": "many"}, "goal", "positive whole number"),
    ({"goal": "true"}, "goal", "positive whole number"),
    ({"opens": None}, "opens", "YYYY-MM-DD"),
    ({"opens": "'next week'"}, "opens", "YYYY-MM-DD"),
    ({"closes": "2026-02-30"}, "closes", "2026-02-30 is not a day of the calendar"),
    ({"closes": "30.06.2027"}, "closes", "YYYY-MM-DD"),
    ({"closes": "2025-12-31"}, "closes", "before the opening date"),
])
def test_each_bad_field_is_named_with_its_file(changes, field, words):
    with pytest.raises(DeclarationError) as caught:
        parse(page(**changes), "docs/en/petitions/bad.md")
    message = str(caught.value)
    assert message.startswith(f"docs/en/petitions/bad.md: field '{field}'"), message
    assert words in message


@pytest.mark.parametrize("text, words", [
    ("no front matter at all", "no front matter"),
    ("---\nslug: [unclosed\n---\nText", "not valid YAML"),
    ("---\n- a list\n---\nText", "mapping"),
    (page(body=""), "no petition text"),
])
def test_malformed_pages_are_refused_with_the_file(text, words):
    with pytest.raises(DeclarationError) as caught:
        parse(text, "bad.md")
    assert str(caught.value).startswith("bad.md: ")
    assert words in str(caught.value)


def test_invalid_utf8_is_refused_not_crashed(tmp_path: Path):
    path = tmp_path / "broken.md"
    path.write_bytes(page().encode() + b"\xff\xfe")
    with pytest.raises(DeclarationError, match="not valid UTF-8"):
        load_file(path)


def test_a_slug_used_twice_is_refused(tmp_path: Path):
    (tmp_path / "a.md").write_text(page(), encoding="utf-8")
    (tmp_path / "b.md").write_text(page(), encoding="utf-8")
    with pytest.raises(DeclarationError) as caught:
        load_folder(tmp_path)
    assert "b.md: field 'slug'" in str(caught.value) and "a.md" in str(caught.value)
    os.utime(tmp_path / "b.md", (1_000_000_000, 1_000_000_000))  # a.md is now the one changed last
    with pytest.raises(DeclarationError) as caught:
        load_folder(tmp_path)
    assert "a.md: field 'slug'" in str(caught.value) and "already used by" in str(caught.value)
    assert str(caught.value).endswith("b.md")


def test_the_index_page_of_the_folder_is_not_a_petition(tmp_path: Path):
    (tmp_path / "index.md").write_text("# Petitions\n", encoding="utf-8")
    (tmp_path / "a.md").write_text(page(), encoding="utf-8")
    assert [d.slug for d in load_folder(tmp_path)] == ["free-them"]


def test_the_shipped_petition_for_vadim_kuramshin():
    declarations = {d.slug: d for d in load_folder(SHIPPED_PETITIONS)}
    vadim = declarations["vadim-kuramshin"]
    assert vadim.title == "Urgent action for Vadim Kuramshin"
    assert vadim.goal > 0 and vadim.opens <= vadim.closes
    text = vadim.body.lower()
    for demand in ("release vadim kuramshin", "drop all charges", "end the beatings",
                   "transfer him to a prison nearer his family", "medical care"):
        assert demand in text, demand
