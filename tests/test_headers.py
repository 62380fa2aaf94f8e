"""Every answer, the site's files and the service's pages alike, carries each protective header exactly once:
in the embedded run here, through nginx in test_production."""

from __future__ import annotations

import re

import pytest
from werkzeug.test import Client

from petition import accounts, create_app, embedded, headers, layout

from conftest import ROOT, SAME_ORIGIN, submit
from test_organisers import PASSWORD, log_in

PROTECTIVE = ("Content-Security-Policy", "Referrer-Policy", "X-Content-Type-Options", "X-Frame-Options")


def assert_protected(kind: str, lists) -> None:
    """``lists(name)`` gives every value sent under ``name``."""
    for name in PROTECTIVE:
        assert len(lists(name)) == 1, (kind, name, lists(name))
    assert "frame-ancestors 'none'" in lists("Content-Security-Policy")[0], kind
    assert lists("Referrer-Policy") == ["same-origin"] and lists("X-Content-Type-Options") == ["nosniff"], kind


def kinds_of_page(site) -> dict[str, str]:
    css = next(site.glob("assets/stylesheets/main.*.min.css")).relative_to(site)
    return {"home page": "/", "petition page": "/petitions/vadim-kuramshin/", "sign page": "/petitions/vadim-kuramshin/sign/",
            "sign redirect": "/petitions/vadim-kuramshin/sign", "stylesheet": f"/{css}", "site image": "/assets/logo.svg",
            "site 404": "/no/such/page/", "service page": "/petitions/vadim-kuramshin/confirmed",
            "service 404": "/petitions/vadim-kuramshin/confirm/not-a-token", "API": "/api/petitions/vadim-kuramshin",
            "organisers' login": "/organisers/login", "organisers' redirect": "/organisers/",
            "service stylesheet": "/static/petition.css"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_embedded_run_sends_every_protective_header_once_on_every_kind_of_answer(app, built_site):
    served = create_app({**app.config, "SITE_DIR": str(built_site)})
    server = Client(embedded.site_and_service(served, built_site))
    for kind, path in kinds_of_page(built_site).items():
        answer = server.get(path)
        assert answer.status_code < 500, (kind, answer.status_code)
        assert_protected(kind, answer.headers.getlist)
    posted = server.post("/petitions/vadim-kuramshin/sign", data={}, headers=SAME_ORIGIN)  # a 422 page
    assert_protected("refused form", posted.headers.getlist)
    page = server.get("/")
    assert page.headers["Content-Security-Policy"] == headers.policy(layout.load(built_site).script_hashes)


def test_nginx_sends_the_policy_the_service_sends(built_site):
    """The site's pages through nginx allow exactly the inline scripts of the built frame (Material's two)."""
    conf = (ROOT / "deploy" / "nginx" / "headers.conf").read_text(encoding="utf-8")
    shipped = re.search(r'add_header Content-Security-Policy "([^"]+)" always;', conf).group(1)
    assert shipped == headers.policy(layout.load(built_site).script_hashes)
    campaign = (ROOT / "deploy" / "nginx" / "campaign.conf").read_text(encoding="utf-8")
    server_level = campaign.split("location")[0]
    assert "add_header" not in re.sub(r"#[^\n]*", "", server_level)  # or proxied answers would get them twice


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_organisers_csv_names_its_charset_once(app, client):
    with app.app_context():
        accounts.add("organiser@example.org", PASSWORD)
    assert submit(client).status_code == 303
    assert log_in(client, "organiser@example.org").status_code == 303
    for path in ("/organisers/petitions/vadim-kuramshin/signatures.csv",
                 "/organisers/petitions/vadim-kuramshin/counts.csv"):
        answer = client.get(path)
        assert answer.status_code == 200 and "ountry" in answer.get_data(as_text=True), path
        assert answer.headers["Content-Type"] == "text/csv; charset=utf-8", path
