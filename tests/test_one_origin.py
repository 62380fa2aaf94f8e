"""Site and service as one product: the service's pages in the site's frame, fragments for signing in
place, the embedded one-origin server, and the count API readable from other sites."""

from __future__ import annotations

import re
import shutil

import pytest
from flask import abort

from petition import embedded
from petition.layout import absolute

from conftest import SAME_ORIGIN, VALID, submit

FRAGMENT = {**SAME_ORIGIN, "X-Petition-Fragment": "1"}


@pytest.fixture
def framed(app, built_site):
    """The app dressed in the built site's frame, with a route to raise any error page."""
    app.config["SITE_DIR"] = str(built_site)
    from petition import layout

    layout.install(app)

    @app.get("/raise/<int:code>")
    def raise_error(code: int):
        abort(code)

    return app


def frame_of(html: str) -> bool:
    return 'class="md-header' in html and 'href="/take-action/"' in html and "/assets/campaign.css" in html


def test_every_service_page_wears_the_site_frame(framed):
    client = framed.test_client()
    pages = {
        "sign with errors": submit(client, email="bad"),
        "confirmed": client.get("/petitions/vadim-kuramshin/confirmed"),
        "withdrawn": client.get("/petitions/vadim-kuramshin/withdrawn"),
        "closed": submit(client, slug="closed-one"),
        "not open": submit(client, slug="future-one"),
        "bad link": client.get("/petitions/vadim-kuramshin/confirm/broken"),
        "cross-site": submit(client, headers={"Sec-Fetch-Site": "cross-site"}),
    }
    for code in (400, 404, 409, 429, 500, 503):
        pages[str(code)] = client.get(f"/raise/{code}")
    for name, response in pages.items():
        html = response.get_data(as_text=True)
        assert frame_of(html), name
        assert "<!--petition:" not in html, name
    assert pages["503"].status_code == 503 and "Error 503" in pages["503"].get_data(as_text=True)
    title = re.search(r"<title>(.*?)</title>", pages["sign with errors"].get_data(as_text=True)).group(1)
    assert title == "Error: Sign: Urgent action for Vadim Kuramshin - Campaign Kazakhstan"
    assert pages["cross-site"].status_code == 403


def test_the_frames_inline_scripts_are_allowed_by_hash_only(framed):
    response = submit(framed.test_client(), email="bad")
    policy = response.headers["Content-Security-Policy"]
    scripts = re.search(r"script-src ([^;]+)", policy).group(1).split()
    assert scripts[0] == "'self'" and len(scripts) > 1
    assert all(s.startswith("'sha256-") for s in scripts[1:]) and "'unsafe-inline'" not in policy
    html = response.get_data(as_text=True)
    assert html.count("<script>") == len(scripts) - 1


def test_the_frames_links_work_from_any_path(framed):
    html = framed.test_client().get("/petitions/vadim-kuramshin/confirm/x").get_data(as_text=True)
    for url in re.findall(r'(?:href|src)="([^"]+)"', html):
        assert url.startswith(("/", "#", "https://", "mailto:")), url
    assert '"base": "/"' in html and 'rel="canonical"' not in html


@pytest.mark.parametrize("url, expected", [
    ("../assets/a.css", "/assets/a.css"), ("..", "/"), ("../about/", "/about/"), ("#top", "#top"),
    ("/x/", "/x/"), ("https://example.org/", "https://example.org/"), ("./", "/service-shell/"),
    ("../blog/#latest", "/blog/#latest"),
])
def test_relative_urls_of_the_frame_become_absolute(url, expected):
    assert absolute(url) == expected


def test_without_a_built_site_the_plain_frame_is_used(client):
    html = submit(client, email="bad").get_data(as_text=True)
    assert "/static/petition.css" in html and "md-header" not in html


def test_fragments_for_signing_in_place(client):
    """The site's script posts the form in the page and shows what comes back in its place."""
    bad = submit(client, headers=FRAGMENT, email="x")
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and 'role="alert"' in html and html.lstrip().startswith("<section")
    assert "data-petition-form" in html and "<html" not in html
    assert "X-Petition-Fragment" in bad.headers["Vary"] and bad.headers["X-Petition-Fragment"] == "1"

    good = submit(client, headers=FRAGMENT)
    text = good.get_data(as_text=True)
    assert good.status_code == 200 and "Check your e-mail</h2>" in text and "<html" not in text
    assert good.headers["X-Petition-Fragment"] == "1"

    closed = submit(client, slug="closed-one", headers=FRAGMENT)
    assert closed.status_code == 410 and "This petition is closed" in closed.get_data(as_text=True)
    refused = submit(client, headers={**FRAGMENT, "Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403 and "<html" not in refused.get_data(as_text=True)
    assert refused.headers["X-Petition-Fragment"] == "1"
    assert "X-Petition-Fragment" not in submit(client, email="x").headers


def test_count_json_is_readable_cross_origin_and_nothing_else(client):
    counted = client.get("/api/petitions/vadim-kuramshin", headers={"Origin": "https://friends.example"})
    assert counted.headers["Access-Control-Allow-Origin"] == "*"
    for path in ("/api/petitions", "/api/petitions/vadim-kuramshin/counts.json"):
        assert client.get(path).headers["Access-Control-Allow-Origin"] == "*"
    preflight = client.options("/api/petitions/vadim-kuramshin", headers={
        "Origin": "https://friends.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Methods" not in preflight.headers
    page = client.get("/petitions/vadim-kuramshin/confirmed", headers={"Origin": "https://friends.example"})
    assert "Access-Control-Allow-Origin" not in page.headers
    posted = submit(client, headers={"Origin": "https://friends.example"})
    assert posted.status_code == 403 and "Access-Control-Allow-Origin" not in posted.headers


def test_the_embedded_server_serves_the_site_and_the_service(app, built_site, tmp_path):
    from werkzeug.test import Client

    site = tmp_path / "site"
    shutil.copytree(built_site, site)
    server = Client(embedded.site_and_service(app, site))
    home = server.get("/")
    assert home.status_code == 200 and b"Solidarity with Kazakhstan" in home.data
    assert server.get("/petitions/vadim-kuramshin/").status_code == 200  # the site's petition page
    # The sign page is the site's, at the address the form posts to; the POST goes to the service.
    moved = server.get("/petitions/vadim-kuramshin/sign")
    assert moved.status_code == 301 and moved.headers["Location"] == "/petitions/vadim-kuramshin/sign/"
    sign_page = server.get("/petitions/vadim-kuramshin/sign/")
    assert sign_page.status_code == 200 and b'action="/petitions/vadim-kuramshin/sign"' in sign_page.data
    assert server.get("/petitions/vadim-kuramshin/thanks/").status_code == 200
    posted = server.post("/petitions/vadim-kuramshin/sign", data=VALID, headers=SAME_ORIGIN)
    assert posted.status_code == 303 and posted.headers["Location"] == "/petitions/vadim-kuramshin/thanks/"
    for response in (moved, sign_page, posted):
        assert "Set-Cookie" not in response.headers
    assert server.get("/api/petitions/vadim-kuramshin").json["slug"] == "vadim-kuramshin"
    assert server.get("/assets/campaign.css").headers["Content-Type"].startswith("text/css")
    assert server.get("/about").status_code == 301
    missing = server.get("/no/such/page/")
    assert missing.status_code == 404 and b"Page not found" in missing.data
    assert server.get("/../../etc/passwd").status_code == 404
    assert server.post("/about/").status_code == 405
    assert server.put("/petitions/vadim-kuramshin/sign").status_code == 405  # the service answers
