"""Site and service as one product: the service's pages in the site's frame, fragments for signing in
place, the embedded one-origin server, and the count API readable from other sites."""

from __future__ import annotations

import re
import shutil

import pytest
from flask import abort

from petition import embedded
from petition.layout import absolute

from conftest import VALID, csrf_token

FRAGMENT = {"X-Petition-Fragment": "1"}


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
        "sign": client.get("/petitions/vadim-kuramshin/sign"),
        "thanks": client.get("/petitions/vadim-kuramshin/thanks"),
        "confirmed": client.get("/petitions/vadim-kuramshin/confirmed"),
        "withdrawn": client.get("/petitions/vadim-kuramshin/withdrawn"),
        "closed": client.get("/petitions/closed-one/sign"),
        "not open": client.get("/petitions/future-one/sign"),
        "bad link": client.get("/petitions/vadim-kuramshin/confirm/broken"),
    }
    for code in (400, 404, 409, 429, 500, 503):
        pages[str(code)] = client.get(f"/raise/{code}")
    for name, response in pages.items():
        html = response.get_data(as_text=True)
        assert frame_of(html), name
        assert "<!--petition:" not in html, name
    assert pages["503"].status_code == 503 and "Error 503" in pages["503"].get_data(as_text=True)
    title = re.search(r"<title>(.*?)</title>", pages["sign"].get_data(as_text=True)).group(1)
    assert title == "Sign: Urgent action for Vadim Kuramshin - Campaign Kazakhstan"


def test_the_frames_inline_scripts_are_allowed_by_hash_only(framed):
    response = framed.test_client().get("/petitions/vadim-kuramshin/sign")
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
    html = client.get("/petitions/vadim-kuramshin/sign").get_data(as_text=True)
    assert "/static/petition.css" in html and "md-header" not in html


def test_fragments_for_signing_in_place(client):
    form = client.get("/petitions/vadim-kuramshin/sign", headers=FRAGMENT)
    html = form.get_data(as_text=True)
    assert form.status_code == 200 and html.lstrip().startswith("<section")
    assert "data-petition-form" in html and "<html" not in html
    assert "X-Petition-Fragment" in form.headers["Vary"] and form.headers["X-Petition-Fragment"] == "1"
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)

    bad = client.post("/petitions/vadim-kuramshin/sign", data={**VALID, "email": "x", "csrf_token": token},
                      headers=FRAGMENT)
    assert bad.status_code == 422 and 'role="alert"' in bad.get_data(as_text=True)
    assert "<html" not in bad.get_data(as_text=True)

    good = client.post("/petitions/vadim-kuramshin/sign", data={**VALID, "csrf_token": token},
                       headers=FRAGMENT, follow_redirects=True)
    text = good.get_data(as_text=True)
    assert good.status_code == 200 and "Check your e-mail</h2>" in text and "<html" not in text

    closed = client.get("/petitions/closed-one/sign", headers=FRAGMENT)
    assert closed.status_code == 410 and "This petition is closed" in closed.get_data(as_text=True)
    expired = client.post("/petitions/vadim-kuramshin/sign", data=VALID, headers=FRAGMENT)
    assert expired.status_code == 400 and "<html" not in expired.get_data(as_text=True)
    assert expired.headers["X-Petition-Fragment"] == "1"
    assert "X-Petition-Fragment" not in client.get("/petitions/vadim-kuramshin/sign").headers


def test_count_json_is_readable_cross_origin_and_nothing_else(client):
    counted = client.get("/api/petitions/vadim-kuramshin", headers={"Origin": "https://friends.example"})
    assert counted.headers["Access-Control-Allow-Origin"] == "*"
    for path in ("/api/petitions", "/api/petitions/vadim-kuramshin/counts.json"):
        assert client.get(path).headers["Access-Control-Allow-Origin"] == "*"
    preflight = client.options("/api/petitions/vadim-kuramshin", headers={
        "Origin": "https://friends.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Methods" not in preflight.headers
    page = client.get("/petitions/vadim-kuramshin/sign", headers={"Origin": "https://friends.example"})
    assert "Access-Control-Allow-Origin" not in page.headers
    token = csrf_token(client, "/petitions/vadim-kuramshin/sign")
    posted = client.post("/petitions/vadim-kuramshin/sign", data={**VALID, "csrf_token": token},
                         headers={"Origin": "https://friends.example"})
    assert "Access-Control-Allow-Origin" not in posted.headers


def test_the_embedded_server_serves_the_site_and_the_service(app, built_site, tmp_path):
    from werkzeug.test import Client

    site = tmp_path / "site"
    shutil.copytree(built_site, site)
    server = Client(embedded.site_and_service(app, site))
    home = server.get("/")
    assert home.status_code == 200 and b"Solidarity with Kazakhstan" in home.data
    assert server.get("/petitions/vadim-kuramshin/").status_code == 200  # the site's petition page
    assert server.get("/petitions/vadim-kuramshin/sign").status_code == 200  # the service's form
    assert server.get("/api/petitions/vadim-kuramshin").json["slug"] == "vadim-kuramshin"
    assert server.get("/assets/campaign.css").headers["Content-Type"].startswith("text/css")
    assert server.get("/about").status_code == 301
    missing = server.get("/no/such/page/")
    assert missing.status_code == 404 and b"Page not found" in missing.data
    assert server.get("/../../etc/passwd").status_code == 404
    assert server.post("/about/").status_code == 405
    assert server.put("/petitions/vadim-kuramshin/sign").status_code == 405  # the service answers
