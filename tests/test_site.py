"""The campaign site: the strict build, the posts from the campaign's articles, privacy of every page."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
import yaml

from werkzeug.test import Client

from petition import embedded
from petition.declarations import split_front_matter

from conftest import build_site

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "en"
POSTS = DOCS / "blog" / "posts"

# One post per article of the campaign's pages; 003 held six of them.
ARTICLES = [
    "Kazakhstan: New wave of arrests against opposition",
    "Kazakhstan: Treatment of political prisoners condemned",
    "Step up international protests!",
    "Kazakhstan: Socialists jailed by regime",
    "Third anniversary of Zhanaozen massacre",
    "Rosa’s release means it’s time to step up campaigning for other political prisoners",
    "Rosa Tuletaeva is freed from prison!",
    "Brutal repression in imperialism’s interests",
    "Vadim Kuramshin beaten and intimidated in prison",
    "Union representatives meet with jailed oil-workers",
]
PRIVATE_PHONE = re.compile(r"7\D?022\D?969\D?864")


def mkdocs_config() -> dict:
    loader = type("Loader", (yaml.SafeLoader,), {})
    loader.add_constructor("!ENV", lambda loader, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=loader)


@pytest.fixture
def site(built_site: Path) -> Path:
    return built_site


@pytest.fixture
def served(app, built_site):
    """A page as the embedded run serves it: the built file with the service's live parts included."""
    app.config["SITE_DIR"] = str(built_site)
    client = Client(embedded.site_and_service(app, built_site))
    return lambda path: client.get(path).get_data(as_text=True)


def posts() -> list[tuple[Path, dict, str]]:
    found = []
    for path in sorted(POSTS.glob("*.md")):
        raw, body = split_front_matter(path.read_text(encoding="utf-8"))
        found.append((path, yaml.safe_load(raw), body))
    return found


def test_every_article_has_a_post_with_date_author_and_allowed_categories():
    blog = mkdocs_config()["plugins"]["blog"]
    allowed = set(blog["categories_allowed"])
    authors = set(yaml.safe_load((DOCS / "blog" / ".authors.yml").read_text(encoding="utf-8"))["authors"])
    titles = {}
    for path, meta, body in posts():
        heading = re.search(r"^# (.+)$", body, re.MULTILINE)
        assert heading, f"{path.name}: no title"
        titles[heading.group(1).strip()] = path
        assert meta["date"]["created"], path.name
        assert meta["authors"] and set(meta["authors"]) <= authors, path.name
        assert meta["categories"] and set(meta["categories"]) <= allowed, path.name
        assert meta.get("tags"), path.name
        assert "<!-- more -->" in body, f"{path.name}: no excerpt separator"
    assert sorted(titles) == sorted(ARTICLES)


def test_inferred_dates_say_so():
    for path, meta, body in posts():
        if "The original page carries no date" in body:
            assert '!!! note "Editor\'s note"' in body, path.name


def test_the_articles_lost_their_page_furniture_and_kept_no_invented_address():
    furniture = ("Be the first to comment", "Leave a Reply", "Donate via Paypal", "Become a patron",
                 "Special financial appeal", "Link to this page", "In The Socialist 30 March", "[signature]",
                 "Share this with your friends", "[email protected]")
    for path, _, body in posts():
        for words in furniture:
            assert words not in body, f"{path.name}: {words}"
        assert not PRIVATE_PHONE.search(body), path.name
        # The only addresses the articles really give are the ministry's.
        assert set(re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", body)) <= {"mid@mid.kz"}, path.name


def test_the_strict_build_makes_every_page(site):
    for page in ("index.html", "404.html", "petitions/index.html", "petitions/vadim-kuramshin/index.html",
                 "take-action/index.html", "about/index.html", "privacy/index.html", "tags/index.html",
                 "blog/index.html", "blog/archive/2014/index.html", "blog/category/zhanaozen/index.html",
                 "search/search_index.json"):
        assert (site / page).is_file(), page


def test_the_rss_feed_has_one_item_per_post(site):
    feed = feedparser.parse((site / "feed_rss_created.xml").read_bytes())
    assert not feed.bozo, feed.bozo_exception
    assert sorted(entry.title for entry in feed.entries) == sorted(ARTICLES)
    assert all(entry.published_parsed for entry in feed.entries)


class Resources(HTMLParser):
    """Every URL a browser would fetch on its own while showing the page (not links a reader follows)."""

    FETCHING_LINKS = {"stylesheet", "icon", "preload", "prefetch", "modulepreload", "manifest",
                      "dns-prefetch", "preconnect", "apple-touch-icon", "shortcut"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "link" and self.FETCHING_LINKS & set((attrs.get("rel") or "").lower().split()):
            self.urls.append(attrs.get("href") or "")
        for name in ("src", "data", "poster", "background"):
            if attrs.get(name) and tag != "a":
                self.urls.append(attrs[name])
        if attrs.get("srcset"):
            self.urls += [part.split()[0] for part in attrs["srcset"].split(",") if part.strip()]
        if attrs.get("style"):
            self.urls += re.findall(r"url\(['\"]?([^'\")]+)", attrs["style"])
        if tag == "form" and attrs.get("action"):
            self.urls.append(attrs["action"])


def external(url: str) -> bool:
    parts = urlsplit(url.strip())
    return bool(parts.scheme not in ("", "data") or parts.netloc)


def test_no_page_makes_the_browser_contact_another_host(site):
    pages = list(site.rglob("*.html"))
    assert len(pages) > 20
    for page in pages:
        parser = Resources()
        parser.feed(page.read_text(encoding="utf-8"))
        offending = [url for url in parser.urls if external(url)]
        assert not offending, f"{page.relative_to(site)}: {offending}"
    for sheet in site.rglob("*.css"):
        for url in re.findall(r"(?:url\(|@import\s+)['\"]?([^'\")\s;]+)", sheet.read_text(encoding="utf-8")):
            assert not external(url), f"{sheet.relative_to(site)}: {url}"
    assert mkdocs_config()["theme"]["font"] is False


def test_the_scanner_catches_what_it_should():
    parser = Resources()
    parser.feed('<link rel="stylesheet" href="https://fonts.googleapis.com/css"><img src="//cdn.example/x.png">'
                '<script src="assets/local.js"></script><a href="https://t.me/share">share</a>'
                '<div style="background: url(https://evil.example/p.gif)"></div>')
    assert [u for u in parser.urls if external(u)] == [
        "https://fonts.googleapis.com/css", "//cdn.example/x.png", "https://evil.example/p.gif"]


def test_no_private_phone_number_anywhere_in_the_site(site):
    for path in site.rglob("*"):
        if path.is_file() and path.suffix in (".html", ".xml", ".json", ".txt"):
            assert not PRIVATE_PHONE.search(path.read_text(encoding="utf-8", errors="replace")), path


def test_the_petition_page_carries_its_card_from_the_declaration(site, served):
    built = (site / "petitions" / "vadim-kuramshin" / "index.html").read_text(encoding="utf-8")
    assert 'data-petition="vadim-kuramshin"' in built and 'data-api="/api/petitions/vadim-kuramshin"' in built
    assert "To: The President and the Prosecutor General of the Republic of Kazakhstan" in built
    assert "Share this with your friends" in built
    # The count, state and form are the service's, included where the built page says so.
    assert '<!--# include virtual="/petitions/vadim-kuramshin/live/status" stub="petition-unavailable" -->' in built
    assert '<!--# include virtual="/petitions/vadim-kuramshin/live/form" stub="petition-unavailable" -->' in built
    html = served("/petitions/vadim-kuramshin/")
    assert "<!--#" not in html
    assert "of a goal of 10,000" in html and "Open for signatures until 30 June 2027." in html
    assert re.search(r"<strong data-petition-number>0</strong>\s*<span data-petition-noun>signatures</span>", html)
    assert 'action="/petitions/vadim-kuramshin/sign"' in html and 'name="email"' in html
    assert "csrf_token" not in html  # the same part for every reader: nginx may keep it


def test_each_petition_has_a_static_sign_page_and_thanks_page(site, served):
    """The visitor's whole path but the POST and the live parts is the site's."""
    built = (site / "petitions" / "vadim-kuramshin" / "sign" / "index.html").read_text(encoding="utf-8")
    assert "<h1" in built and "Sign: Urgent action for Vadim Kuramshin" in built
    assert '<a href="../">Read the whole petition</a>' in built  # the whole text, one click away
    sign = served("/petitions/vadim-kuramshin/sign/")
    assert 'action="/petitions/vadim-kuramshin/sign"' in sign and sign.count('method="post"') == 1
    for name in ("name", "email", "country", "postcode", "comment", "public", "updates"):
        assert f'<label for="{name}">' in sign
    thanks = (site / "petitions" / "vadim-kuramshin" / "thanks" / "index.html").read_text(encoding="utf-8")
    assert "Check your e-mail" in thanks and "Urgent action for Vadim Kuramshin" in thanks
    assert 'method="post"' not in thanks and "<!--#" not in thanks  # the same bytes for everyone
    home = served("/")
    assert 'href="/petitions/vadim-kuramshin/sign/"' in home  # straight to the page, no redirect


def test_a_new_petition_page_needs_no_navigation_entry():
    """Petition pages are listed by the petitions page and the home page, not by a line per petition."""
    config = mkdocs_config()
    assert "/petitions/*.md" in config["not_in_nav"]
    assert not any("petitions/" in str(entry) and "index.md" not in str(entry) for entry in config["nav"])


def test_home_features_the_petition_and_the_latest_posts(site):
    html = (site / "index.html").read_text(encoding="utf-8")
    assert 'data-petition="vadim-kuramshin"' in html
    assert "Kazakhstan: Treatment of political prisoners condemned" in html  # the newest post
    assert html.count('<li>\n          <a href="blog/') == 5


def test_posts_have_plain_share_links(site):
    post = next(site.glob("blog/2014/05/01/*/index.html")).read_text(encoding="utf-8")
    for network in ("mailto:?subject=", "https://x.com/intent/post?", "https://www.facebook.com/sharer/",
                    "https://t.me/share/url?", "https://wa.me/?text="):
        assert network in post, network
    assert 'rel="noopener noreferrer"' in post


def test_a_bad_petition_declaration_fails_the_build_naming_file_and_field(tmp_path):
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copytree(ROOT / "overrides", tmp_path / "overrides")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "en" / "petitions" / "vadim-kuramshin.md"
    page.write_text(page.read_text(encoding="utf-8").replace("goal: 10000", "goal: ten thousand"),
                    encoding="utf-8")
    result = build_site(tmp_path / "site", tmp_path / "mkdocs.yml")
    assert result.returncode != 0
    assert "Bad petition declaration" in result.stderr
    assert "docs/en/petitions/vadim-kuramshin.md: field 'goal': must be a positive whole number" in result.stderr


def test_the_public_name_choice_is_labelled_by_what_it_does(served):
    """There is no public list of signers: a name shown 'publicly' goes into the list handed over with the
    petition (the delivery report), and the sign form's checkbox says so."""
    form = served("/petitions/vadim-kuramshin/sign/")
    assert "Include my name in the list of names handed over with the petition" in form
    assert "list of signers" not in form


def test_a_long_comment_is_not_cut_silently_by_the_browser(served):
    form = served("/petitions/vadim-kuramshin/sign/")
    textarea = re.search(r"<textarea[^>]*>", form).group(0)
    assert 'name="comment"' in textarea and "maxlength" not in textarea


def test_the_petitions_page_does_not_lead_back_to_an_archive_year(site):
    page = (site / "petitions" / "index.html").read_text(encoding="utf-8")
    footer = re.search(r'<nav class="md-footer__inner[^>]*>', page).group(0)
    assert "hidden" in footer  # its "Previous: 2010" link, hidden from readers and screen readers alike
