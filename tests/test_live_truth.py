"""One truth on every page: the site's pages show a petition's count and state as the service knows them,
with JavaScript and without it, in real Chromium; a petition an organiser closed early invites nobody."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from conftest import ROOT, SHIPPED_PETITIONS, Browser, free_port, wait_until_serving
from test_browser import CHROMIUM_ARGS, chromium_path

pytestmark = pytest.mark.slow
PETITION = Path(sys.executable).with_name("petition")
PAGE = "/petitions/vadim-kuramshin/"
ORGANISER = "organiser@example.org"


@pytest.fixture(scope="module")
def browser_type():
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, built_site):
    """``petition serve`` with the built site, the shipped petition and an organiser's account."""
    folder = tmp_path_factory.mktemp("truth")
    port = free_port()
    petitions = folder / "petitions"
    shutil.copytree(SHIPPED_PETITIONS, petitions)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETITION_")}
    env.update({"PETITION_INSTANCE_PATH": str(folder / "instance"), "PETITION_SITE_DIR": str(built_site),
                "PETITION_BASE_URL": f"http://127.0.0.1:{port}",
                "PETITION_PETITIONS_DIR": str(petitions), "PETITION_COUNT_CACHE_SECONDS": "0"})
    subprocess.run([str(PETITION), "db", "upgrade"], cwd=folder, env=env, check=True, capture_output=True)
    added = subprocess.run([str(PETITION), "organiser", "add", ORGANISER, "--generate"], cwd=folder, env=env,
                           check=True, capture_output=True, text=True)
    password = re.search(r"^Password: (\S+)$", added.stdout, re.MULTILINE).group(1)
    server = subprocess.Popen([str(PETITION), "serve", "--port", str(port)], cwd=folder, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(Browser(base), "/api/petitions", server)
        yield base, password, folder
    finally:
        server.terminate()
        server.wait(timeout=10)


def shown(browser_type, base: str, path: str, javascript: bool) -> dict:
    """What a reader sees of the petition on a page: count, state, and every invitation to sign."""
    context = browser_type.new_context(java_script_enabled=javascript)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(base + path)
    if javascript:
        page.wait_for_load_state("networkidle")
    card = page.locator('[data-petition="vadim-kuramshin"]').first
    seen = {
        "count": card.locator("[data-petition-number]").inner_text(),
        "noun": card.locator("[data-petition-noun]").inner_text(),
        "state": card.locator("[data-petition-state]").inner_text(),
        "sign buttons": page.get_by_role("link", name="Sign the petition").count(),
        "forms": page.locator("form[data-petition-form]").count(),
        "text": page.locator("main, article").first.inner_text(),
        "asked the API": any("/api/petitions/vadim-kuramshin" in url for url in requests),
    }
    context.close()
    return seen


def sign_and_confirm(base: str, folder: Path) -> None:
    """One confirmed signature through the service; the embedded run writes its e-mail to the outbox."""
    browser = Browser(base)
    status, _, _ = browser.request("/petitions/vadim-kuramshin/sign", {
        "name": "Roza", "email": "roza@example.org", "country": "KZ", "postcode": "", "comment": ""})
    assert status == 303
    outbox = folder / "instance" / "outbox"
    deadline = time.monotonic() + 15
    while not list(outbox.glob("*.eml")):
        assert time.monotonic() < deadline, "no confirmation e-mail"
        time.sleep(0.1)
    [eml] = outbox.glob("*.eml")
    text = message_from_bytes(eml.read_bytes(), policy=policy.default).get_body(("plain",)).get_content()
    link = re.search(rf"{re.escape(base)}(/petitions/vadim-kuramshin/confirm/\S+)", text).group(1)
    assert browser.request(link, {})[0] == 303


def log_in_and_close(browser_type, base: str, password: str) -> None:
    context = browser_type.new_context()
    page = context.new_page()
    page.goto(base + "/organisers/login")
    page.get_by_label("E-mail address").fill(ORGANISER)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.goto(base + "/organisers/petitions/vadim-kuramshin")
    page.get_by_role("button", name="Close the petition now").click()
    page.wait_for_load_state()
    assert "is closed: it takes no more signatures" in page.content()
    context.close()


def test_one_confirmed_signature_shows_as_one_with_javascript_and_without(browser_type, served):
    base, _, folder = served
    sign_and_confirm(base, folder)
    for javascript in (True, False):
        for path in ("/", PAGE):
            seen = shown(browser_type, base, path, javascript)
            assert (seen["count"], seen["noun"]) == ("1", "signature"), (path, javascript)
            assert seen["state"] == "Open for signatures until 30 June 2027.", (path, javascript)
            assert seen["sign buttons"] == (1 if path == "/" else 0) and seen["forms"] == (path == PAGE)
            assert seen["asked the API"] is javascript  # without JavaScript the server's page says it all


def test_a_petition_closed_early_invites_nobody_with_javascript_or_without(browser_type, served):
    """After the one above: its count stays, its state is the day it was closed, no form, no Sign button."""
    base, password, _ = served
    log_in_and_close(browser_type, base, password)
    today = datetime.now(timezone.utc)
    closed = f"Closed on {today.day} {today:%B %Y}, before its planned end: it takes no more signatures."
    for javascript in (True, False):
        for path in ("/", PAGE, "/petitions/vadim-kuramshin/sign/", "/petitions/"):
            seen = shown(browser_type, base, path, javascript)
            assert seen["state"] == closed, (path, javascript, seen["state"])
            assert seen["sign buttons"] == 0 and seen["forms"] == 0, (path, javascript)
            assert seen["count"] == "1", (path, javascript)
            assert "30 June 2027" not in seen["state"]
        page = shown(browser_type, base, PAGE, javascript)["text"]
        assert "This petition is closed" in page and f"{today.day} {today:%B %Y}" in page
        assert "stopped taking signatures after 30 June 2027" not in page


def test_with_the_service_down_nginx_serves_the_pages_and_says_what_is_missing(browser_type, built_site, tmp_path):
    """nginx up, the service never started: every page reads, its live parts say they are unavailable."""
    from test_production import checked_nginx, nginx_binary, site_server_for_test

    nginx = nginx_binary()
    web_port, app_port = free_port(), free_port()  # nothing listens on the service's port
    conf = tmp_path / "nginx"
    conf.mkdir()
    (conf / "campaign.conf").write_text(site_server_for_test(
        (ROOT / "deploy" / "nginx" / "campaign.conf").read_text(encoding="utf-8"), web_port, app_port,
        built_site, conf))
    checked_nginx(nginx, conf)
    proxy = subprocess.Popen([nginx, "-p", str(conf), "-c", str(conf / "nginx.conf"), "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{web_port}"
        wait_until_serving(Browser(base), "/", proxy)
        for javascript in (False, True):
            context = browser_type.new_context(java_script_enabled=javascript)
            page = context.new_page()
            page.goto(base + PAGE)
            assert page.get_by_role("heading", name="Urgent action for Vadim Kuramshin").is_visible()
            assert page.get_by_text("The live count and the sign form are unavailable for the moment.").count() == 2
            assert page.locator("form[data-petition-form]").count() == 0
            context.close()
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)


def test_a_form_sent_while_the_service_is_away_keeps_what_was_typed(browser_type, built_site, tmp_path):
    """The page was read while the service was up; it went away before the signer pressed the button."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETITION_")}
    env.update({"PETITION_INSTANCE_PATH": str(tmp_path / "instance"), "PETITION_SITE_DIR": str(built_site),
                "PETITION_PETITIONS_DIR": str(SHIPPED_PETITIONS)})
    server = subprocess.Popen([str(PETITION), "serve", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(Browser(base), "/api/petitions", server)
        page = browser_type.new_page()
        page.goto(base + PAGE)
        page.fill("#name", "Aigerim")
        page.fill("#email", "aigerim@example.org")
        page.select_option("#country", "KZ")
    finally:
        server.terminate()
        server.wait(timeout=10)
    page.get_by_role("button", name="Sign the petition").click()
    page.get_by_text("Signing is unavailable for the moment").wait_for()
    assert page.locator("#name").input_value() == "Aigerim"  # what she typed stays, to send again
    assert page.get_by_role("button", name="Sign the petition").is_enabled()
    page.close()
