"""End to end in real Chromium (Debian's, driven by Playwright): read, sign, confirm from a real SMTP
server, see the count rise; with and without JavaScript; errors; the embed snippet on another origin.
Accessibility (axe-core, focus) is tested in test_accessibility.py, the service down in test_live_truth.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, Browser, SmtpServer, free_port, need, serving_site, wait_until_serving

pytestmark = pytest.mark.slow
PETITION = "/petitions/vadim-kuramshin/"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    need("Chromium (Debian package chromium)")


@pytest.fixture(scope="module")
def chromium():
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Live:
    def __init__(self, base: str, smtp: SmtpServer) -> None:
        self.base = base
        self.smtp = smtp

    def confirm_link(self, address: str) -> str:
        """The confirmation link of the newest e-mail to ``address``, as the signer would click it."""
        def mine():
            return [m for m in self.smtp.inbox.messages if m["To"].addresses[0].addr_spec == address]

        deadline = time.monotonic() + 15
        while not mine():
            assert time.monotonic() < deadline, f"no e-mail to {address}"
            time.sleep(0.1)
        text = mine()[-1].get_body(preferencelist=("plain",)).get_content()
        return re.search(rf"{re.escape(self.base)}/petitions/[\w-]+/confirm/\S+", text).group(0)


@pytest.fixture(scope="module")
def live(tmp_path_factory, built_site):
    """``petition serve`` with the built site, sending mail to a real SMTP server on loopback."""
    folder = tmp_path_factory.mktemp("live")
    smtp = SmtpServer()
    smtp.start()
    try:
        with serving_site(folder, built_site, smtp.url) as (base, _):
            yield Live(base, smtp)
    finally:
        smtp.stop()


def api_count(base: str) -> int:
    with urllib.request.urlopen(base + "/api/petitions/vadim-kuramshin", timeout=10) as response:
        return json.load(response)["signature_count"]


def count_on(page) -> int:
    number = page.locator("[data-petition-number]").first
    number.wait_for(state="visible")
    return int(number.inner_text().replace(",", ""))


def csp_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    return errors


def test_read_sign_in_place_confirm_and_see_the_count_rise(chromium, live):
    page = chromium.new_page()
    blocked = csp_errors(page)
    page.goto(live.base + "/")
    assert count_on(page) >= 0  # the home page's card shows the live count
    page.get_by_role("link", name="Read the petition").click()
    page.wait_for_url(f"**{PETITION}")
    before = count_on(page)
    form = page.locator("form[data-petition-form]")
    form.wait_for()
    page.fill("#name", "Asel Nurlanova")
    page.fill("#email", "asel@example.org")
    page.select_option("#country", "KZ")
    page.get_by_role("button", name="Sign the petition").click()
    page.get_by_text("Check your e-mail").wait_for()
    assert page.url == live.base + PETITION  # signed where she read
    assert page.evaluate("document.activeElement.hasAttribute('data-petition-result')")

    page.goto(live.confirm_link("asel@example.org"))
    assert page.locator("dl.stored").get_by_text("Asel Nurlanova").is_visible()  # what she confirms
    page.get_by_role("button", name="Confirm my signature").click()
    page.wait_for_url("**/confirmed")
    page.goto(live.base + PETITION)
    assert count_on(page) == before + 1
    shown = page.locator("[data-petition-live] .petition-live__count").first.inner_text()
    # "1 signature", "2 signatures"
    assert shown == f"{before + 1:,} signature{'' if before + 1 == 1 else 's'} of a goal of 10,000"
    assert blocked == []
    assert page.context.cookies() == []  # nothing of it is left in the browser
    page.close()


def test_the_same_with_javascript_off(chromium, live):
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live.base + "/")
    page.get_by_role("link", name="Sign the petition").first.click()
    page.wait_for_url("**/petitions/vadim-kuramshin/sign/")  # the site's own page, with the form in it
    before = api_count(live.base)
    page.fill("#name", "Daniyar")
    page.fill("#email", "daniyar@example.org")
    page.select_option("#country", "GB")
    page.get_by_role("button", name="Sign the petition").click()
    page.wait_for_url("**/petitions/vadim-kuramshin/thanks/")
    assert page.get_by_role("heading", name="Check your e-mail").first.is_visible()
    page.goto(live.confirm_link("daniyar@example.org"))
    page.get_by_role("button", name="Confirm my signature").click()
    page.wait_for_url("**/confirmed")
    assert int(page.locator(".count-number").inner_text().replace(",", "")) == before + 1
    assert context.cookies() == []
    context.close()


def test_invalid_input_shows_errors_with_and_without_javascript(chromium, live):
    page = chromium.new_page()
    page.goto(live.base + PETITION)
    page.locator("form[data-petition-form]").wait_for()
    page.fill("#email", "not an address")
    page.get_by_role("button", name="Sign the petition").click()
    summary = page.locator(".error-summary")
    summary.wait_for()
    assert page.url == live.base + PETITION
    assert summary.get_attribute("role") == "alert"
    assert page.evaluate("document.activeElement.classList.contains('error-summary')")
    text = summary.inner_text()
    assert "Enter your full name." in text and "Enter a valid e-mail address" in text
    assert page.locator("#email").input_value() == "not an address"  # kept
    page.close()

    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live.base + "/petitions/vadim-kuramshin/sign/")
    page.fill("#name", "   ")  # the browser's maxlength stops overlong names; blanks reach the server
    page.fill("#email", "daniyar@example")
    page.get_by_role("button", name="Sign the petition").click()
    summary = page.locator(".error-summary").inner_text()
    assert "Enter your full name." in summary and "Enter a valid e-mail address" in summary
    assert page.locator("#name").get_attribute("aria-invalid") == "true"
    context.close()


def test_the_documented_embed_snippet_shows_the_count_on_another_site(chromium, live, tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Showing a petition on another site", 1)[1]
    snippet = re.search(r"```html\n(.*?)```", section, re.DOTALL).group(1)
    (tmp_path / "index.html").write_text(
        "<!doctype html><html lang='en'><title>Friends</title><body>"
        + snippet.replace("https://campaign.example", live.base) + "</body></html>")
    port = free_port()
    other = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                              "--directory", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        origin = f"http://localhost:{port}"  # another origin than the campaign's 127.0.0.1
        wait_until_serving(Browser(origin), "/", other)
        page = chromium.new_page()
        page.goto(origin + "/")
        line = page.locator("[data-count]")
        line.wait_for(state="visible")
        assert re.fullmatch(r"\d[\d,]* people have signed\.", line.inner_text().strip())
        assert page.get_by_role("link", name=re.compile("Sign: Urgent action")).get_attribute("href") == \
            live.base + "/petitions/vadim-kuramshin/sign/"
        page.close()
    finally:
        other.terminate()
        other.wait(timeout=10)
