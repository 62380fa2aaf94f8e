"""Accessibility in real Chromium (Debian's, driven by Playwright): axe-core on every page of the built site,
of the petition service and of the organisers' pages, and a focus indicator one can see on every control.

One server for the module: ``petition serve`` with the built site, a real SMTP server for the links, and an
organiser account made with ``petition organiser add`` as an operator makes it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import ROOT, SAME_ORIGIN, SHIPPED_PETITIONS, Browser, SmtpServer, migrated_app, need, serving_site
from petition.extensions import db
from test_browser import chromium  # noqa: F401 - the module's browser, shared with the other browser tests

pytestmark = pytest.mark.slow
AXE = ROOT / "tests" / "e2e" / "node_modules" / "axe-core" / "axe.min.js"
SLUG = "vadim-kuramshin"
SIGN_PAGE = f"/petitions/{SLUG}/sign/"
ORGANISER = "organiser@example.org"
SIGNED = "signed@example.org"  # confirmed at the start: a signature for the organisers' pages
WAITING = "waiting@example.org"  # never confirmed: a submission for the organisers' erase page
VISITOR = "visitor@example.org"  # confirmed in the browser, for the confirm, confirmed and manage pages
SIGN_CONTROLS = ["#name", "#email", "#country", "#postcode", "#comment", "#public", "#updates",
                 "form[data-petition-form] .privacy a", "form[data-petition-form] button[type=submit]"]
LOGIN_CONTROLS = ["#email", "#password", "main form button[type=submit]"]


class Served:
    def __init__(self, base: str, smtp: SmtpServer, password: str) -> None:
        self.base, self.smtp, self.password = base, smtp, password

    def link(self, address: str, kind: str) -> str:
        """The newest ``kind`` link (confirm, manage) mailed to ``address``."""
        pattern = re.compile(rf"{re.escape(self.base)}/petitions/[\w-]+/{kind}/\S+")
        deadline = time.monotonic() + 15
        while True:
            for message in reversed(self.smtp.inbox.messages):
                if message["To"].addresses[0].addr_spec == address:
                    found = pattern.search(message.get_body(preferencelist=("plain",)).get_content())
                    if found:
                        return found.group(0)
            assert time.monotonic() < deadline, f"no {kind} link mailed to {address}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def served(tmp_path_factory, built_site):
    folder = tmp_path_factory.mktemp("accessible")
    smtp = SmtpServer()
    smtp.start()
    try:
        with serving_site(folder, built_site, smtp.url) as (base, env):
            added = subprocess.run([str(Path(sys.executable).with_name("petition")), "organiser", "add", ORGANISER,
                                    "--generate"], cwd=folder, env=env, capture_output=True, text=True, timeout=60)
            assert added.returncode == 0, added.stderr
            served = Served(base, smtp, re.search(r"Password: (\S+)", added.stdout).group(1))
            http = Browser(base)
            for address in (SIGNED, WAITING, VISITOR):
                status, _, _ = http.request(f"/petitions/{SLUG}/sign", {
                    "name": f"Test {address.split('@')[0]}", "email": address, "country": "KZ",
                    "postcode": "Astana", "comment": "Free them all.", "public": "y", "updates": "y"})
                assert status == 303, f"signing as {address} answered {status}"
            assert http.request(served.link(SIGNED, "confirm").removeprefix(base), {})[0] == 303
            yield served
    finally:
        smtp.stop()


def with_axe(browser):
    """A browser context whose every page has axe-core, put in by the browser itself: the pages keep their
    Content-Security-Policy."""
    if not AXE.exists():
        need("axe-core (python3 tasks.py test runs npm ci in tests/e2e)")
    context = browser.new_context()
    context.add_init_script(path=str(AXE))
    return context


@pytest.fixture(scope="module")
def axe_context(chromium):  # noqa: F811 - the fixture imported above
    context = with_axe(chromium)
    yield context
    context.close()


# True once no transition runs, 200 ms after the load: one that a scroll on load starts has started by then.
SETTLED = """() => {
  const loaded = performance.getEntriesByType("navigation")[0].loadEventEnd;
  return loaded > 0 && performance.now() - loaded > 200 && !document.getAnimations().some(
    a => a.playState === "running" && a.effect.getTiming().iterations !== Infinity);
}"""


def start_axe(page) -> None:
    """Start axe-core on the page once it has loaded, its live parts (the counts the site's script asks the
    service for) have been filled in and its transitions (Material's header, after a scroll) are over."""
    page.wait_for_load_state("load")
    if page.locator("[data-api]").count():
        page.wait_for_load_state("networkidle")
    page.wait_for_function(SETTLED)
    page.evaluate("() => { window.axeFindings = axe.run(document, {resultTypes: ['violations']}); }")


# Navigation and complementary landmarks shown without a name: a screen reader's list of landmarks tells
# them apart by name only.
UNNAMED = """() => [...document.querySelectorAll("nav, aside")]
  .filter(e => e.checkVisibility() && !e.hasAttribute("aria-label") && !e.hasAttribute("aria-labelledby"))
  .map(e => [e.localName, ...e.classList].join("."))"""


def serious_violations(page) -> list[str]:
    """What axe-core found (``start_axe``): serious and critical violations, and any about landmarks (axe rates
    duplicate ones moderate, yet they garble a screen reader's list of them); rule, impact, where. And the
    landmarks without a name."""
    results = page.evaluate("window.axeFindings")
    found = [f"{v['id']} ({v['impact']}): " + ", ".join(" ".join(n["target"]) for n in v["nodes"][:5])
             for v in results["violations"]
             if v["impact"] in ("serious", "critical") or v["id"].startswith("landmark-") or v["id"] == "region"]
    unnamed = page.evaluate(UNNAMED)
    return found + ([f"unnamed landmarks: {', '.join(unnamed)}"] if unnamed else [])


def check(page, found: dict[str, list[str]], name: str | None = None) -> None:
    """Run axe on the page as it is now and keep what it finds under ``name`` (or the page's address)."""
    start_axe(page)
    violations = serious_violations(page)
    if violations:
        found[name or page.url] = violations


def check_all(context, base: str, paths: list[str], found: dict[str, list[str]], tabs: int = 8) -> None:
    """``check`` each page, loading and checking a few in tabs side by side: their waits overlap."""
    for start in range(0, len(paths), tabs):
        batch = [(path, context.new_page()) for path in paths[start:start + tabs]]
        for path, page in batch:
            status = page.goto(base + path, wait_until="commit").status
            assert status == 200, f"{path}: {status}"
        for path, page in batch:
            start_axe(page)
        for path, page in batch:
            violations = serious_violations(page)
            if violations:
                found[path] = violations
            page.close()


def report(found: dict[str, list[str]]) -> str:
    return "accessibility violations:\n" + "\n".join(
        f"{where}\n  " + "\n  ".join(violations) for where, violations in found.items())


def site_paths(site: Path) -> list[str]:
    """The URL path of every HTML page of the built site but the service's frame."""
    paths = []
    for file in sorted(site.rglob("*.html")):
        relative = file.relative_to(site).as_posix()
        if relative.startswith("service-shell/"):
            continue
        paths.append("/" + relative.removesuffix("index.html"))
    return paths


def test_every_page_of_the_site(axe_context, served, built_site):
    paths = site_paths(built_site)
    assert {"/", "/blog/", SIGN_PAGE, f"/petitions/{SLUG}/", "/404.html"} <= set(paths), paths
    found: dict[str, list[str]] = {}
    check_all(axe_context, served.base, paths, found)
    assert not found, report(found)


def post_refused_form(page, served: Served) -> int:
    """Post the sign page's form with a wrong address as a browser without JavaScript does (submit() skips
    the page's script): the service's own page with the errors, in the site's frame. Its status."""
    page.goto(served.base + SIGN_PAGE)
    page.fill("#email", "not an address")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.evaluate("document.querySelector('form[data-petition-form]').submit()")
    page.locator(".error-summary").wait_for()
    return answer.value.status


def test_the_services_pages(axe_context, served):
    page = axe_context.new_page()
    found: dict[str, list[str]] = {}
    page.goto(served.link(VISITOR, "confirm"))
    check(page, found, "confirm")
    page.get_by_role("button", name="Confirm my signature").click()
    page.wait_for_url("**/confirmed")
    check(page, found, "confirmed")

    # A refused form, posted as a browser without JavaScript does: submit() skips the page's script.
    assert post_refused_form(page, served) == 422
    check(page, found, "the sign form with errors")
    # The service's own error page, with a way on: to the home page and to the petitions.
    response = page.goto(served.base + f"/petitions/no-such/manage/{'x' * 20}")
    assert response.status == 404 and "Error 404" in page.locator("main [data-petition-result]").inner_text()
    onward = page.locator("main [data-petition-result] a").evaluate_all("all => all.map(a => a.pathname)")
    assert onward == ["/", "/petitions/"]
    check(page, found, "the service's 404 page")
    response = page.goto(served.base + f"/petitions/{SLUG}/confirm/not-a-token")
    assert response.status == 404 and "This link does not work" in page.content()
    check(page, found, "a link that does not work")

    page.goto(served.link(VISITOR, "manage"))  # the receipt has come meanwhile
    check(page, found, "manage")
    page.get_by_role("button", name=re.compile("Withdraw")).click()
    page.wait_for_url("**/withdrawn")
    check(page, found, "withdrawn")
    page.close()
    assert not found, report(found)


def log_in(page, served: Served, password: str) -> None:
    page.goto(served.base + "/organisers/login")
    page.fill("#email", ORGANISER)
    page.fill("#password", password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def test_the_organisers_pages(chromium, served):  # noqa: F811 - the fixture imported above
    context = with_axe(chromium)  # a session of its own
    page = context.new_page()
    found: dict[str, list[str]] = {}
    page.goto(served.base + "/organisers/login")
    check(page, found, "login")
    log_in(page, served, "not the password")
    assert page.locator(".error-summary").is_visible()
    check(page, found, "login refused")
    log_in(page, served, served.password)
    assert page.url == served.base + "/organisers/"
    check(page, found, "dashboard")
    check_all(context, served.base, [f"/organisers/petitions/{SLUG}", f"/organisers/petitions/{SLUG}/report",
                                     "/organisers/signatures"], found)
    assert page.goto(served.base + "/organisers/petitions/no-such").status == 404
    check(page, found, "an organisers' page that is not there")

    page.goto(served.base + "/organisers/signatures")
    page.fill("#email", SIGNED)
    page.get_by_role("button", name="Find", exact=True).click()
    page.get_by_text("1 signature found").wait_for()
    check(page, found, "find: a signature found")
    page.get_by_role("button", name="Erase this signature…").click()
    page.wait_for_url("**/erase?back=find")
    check(page, found, "erase a signature")

    page.goto(served.base + "/organisers/signatures")
    page.fill("#email", WAITING)
    page.get_by_role("button", name="Find", exact=True).click()
    page.get_by_role("button", name="Erase these submissions…").click()
    page.wait_for_url("**/submissions/erase")
    check(page, found, "erase unconfirmed submissions")
    context.close()
    assert not found, report(found)


# ---------------------------------------------------------------- focus one can see

INDICATOR = """element => {
  const style = getComputedStyle(element);
  return {outline: [style.outlineStyle, style.outlineWidth, style.outlineColor].join(" "),
          shadow: style.boxShadow};
}"""
# The colour of what is around the element (its nearest ancestor with a background, over white).
BACKGROUND = """element => {
  for (let node = element.parentElement; node; node = node.parentElement) {
    const colour = getComputedStyle(node).backgroundColor;
    if (!/rgba\\(.*, 0\\)$/.test(colour) && colour !== "transparent") return colour;
  }
  return "rgb(255, 255, 255)";
}"""
COLOUR = re.compile(r"rgba?\(([\d.]+), ([\d.]+), ([\d.]+)(?:, ([\d.]+))?\)")


def rgba(text: str) -> tuple[float, float, float, float]:
    match = COLOUR.fullmatch(text.strip())
    assert match, f"unexpected colour {text!r}"
    r, g, b, a = match.groups()
    return float(r), float(g), float(b), 1.0 if a is None else float(a)


def over_white(colour: tuple[float, float, float, float]) -> tuple[float, float, float]:
    r, g, b, a = colour
    return tuple(c * a + 255 * (1 - a) for c in (r, g, b))


def contrast(one: tuple[float, float, float], other: tuple[float, float, float]) -> float:
    def luminance(rgb):
        linear = [(c / 255) / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def rings(indicator: dict) -> list[tuple[float, tuple]]:
    """(width in px, colour) of each solid ring drawn around the element: its outline, its box-shadows'
    spread (a shadow without blur or offset is a ring)."""
    found = []
    style, width, colour = indicator["outline"].split(" ", 2)
    if style not in ("none", "hidden"):
        found.append((float(width.removesuffix("px")), rgba(colour)))
    if indicator["shadow"] != "none":
        for shadow in re.split(r",\s*(?![^()]*\))", indicator["shadow"]):
            colour = COLOUR.search(shadow)
            lengths = [float(n) for n in re.findall(r"(-?[\d.]+)px", COLOUR.sub("", shadow))]
            if colour and "inset" not in shadow and len(lengths) == 4 and lengths[:3] == [0, 0, 0]:
                found.append((lengths[3], rgba(colour.group(0))))
    return found


def seen(indicator: dict, around: str) -> bool:
    """A ring of 2px or more, in a colour with 3:1 contrast against what is around the element."""
    background = over_white(rgba(around))
    return any(width >= 2 and colour[3] > 0 and contrast(over_white(colour), background) >= 3
               for width, colour in rings(indicator))


def focus_problems(page, selectors: list[str], start: str) -> list[str]:
    """Reach each control with Tab alone, from ``start``, and say which show no focus one can see (``seen``),
    or none unlike their look unfocused."""
    problems = []
    page.click(start)  # where keyboard navigation begins; a click itself focuses nothing here
    for selector in selectors:
        control = page.locator(selector).first
        assert control.count(), f"no {selector} on {page.url}"
        unfocused = control.evaluate(INDICATOR)
        for _ in range(15):
            page.keyboard.press("Tab")
            if control.evaluate("element => element === document.activeElement"):
                break
        else:
            problems.append(f"{selector}: never reached with Tab")
            continue
        focused = control.evaluate(INDICATOR)
        if focused == unfocused or not seen(focused, control.evaluate(BACKGROUND)):
            problems.append(f"{selector}: focused {focused}, unfocused {unfocused}")
    return problems


def test_every_control_of_the_sign_form_shows_focus(chromium, served):  # noqa: F811
    page = chromium.new_page()
    page.goto(served.base + SIGN_PAGE)
    problems = focus_problems(page, SIGN_CONTROLS, "h1")
    # The same form refused by the service, in the site's frame, with its error summary's links first.
    assert post_refused_form(page, served) == 422
    problems += [f"refused form: {p}" for p in
                 focus_problems(page, [".error-summary a", *SIGN_CONTROLS], "#sign-heading")]
    page.close()
    assert not problems, "controls without a visible focus:\n" + "\n".join(problems)


def test_the_organisers_login_form_shows_focus(chromium, served):  # noqa: F811
    context = chromium.new_context()
    page = context.new_page()
    page.goto(served.base + "/organisers/login")
    problems = focus_problems(page, LOGIN_CONTROLS, "h1")
    context.close()
    assert not problems, "controls without a visible focus:\n" + "\n".join(problems)


FIRST_VISIT = """() => {
  window.visited = window.visited || new Set();
  if (window.visited.has(document.activeElement)) return false;
  window.visited.add(document.activeElement);
  return true;
}"""


def test_every_stop_of_the_keyboard_shows_focus(chromium, served):  # noqa: F811
    """Every link and button of the frame and the content, on pages of the site and one of the service:
    header, search, tabs, navigation, content, footer."""
    page = chromium.new_page()
    problems = []
    for path in ("/", f"/petitions/{SLUG}/", "/blog/", f"/petitions/no-such/manage/{'x' * 20}"):
        page.goto(served.base + path)
        page.wait_for_load_state("networkidle")
        stops = 0
        for _ in range(200):
            page.keyboard.press("Tab")
            active = page.evaluate_handle("document.activeElement")
            if page.evaluate("e => e === document.body", active) or not page.evaluate(FIRST_VISIT):
                break  # round the page once
            stops += 1
            focused = page.evaluate(INDICATOR, active)
            if not seen(focused, page.evaluate(BACKGROUND, active)):
                problems.append(f"{path} {page.evaluate('e => e.outerHTML.slice(0, 100)', active)}: {focused}")
        if stops < 5:
            problems.append(f"{path}: only {stops} stops for the keyboard")
    page.close()
    assert not problems, "stops without a visible focus:\n" + "\n".join(problems)


def test_without_the_site_the_services_own_frame_shows_focus_too(chromium, tmp_path):  # noqa: F811
    """The service's plain pages (``petition.css``) where no site is built: its refused form and login."""
    app = migrated_app(f"sqlite:///{tmp_path / 'plain.sqlite3'}", tmp_path, SHIPPED_PETITIONS)
    client = app.test_client()
    refused = client.post(f"/petitions/{SLUG}/sign", data={"email": "not an address"}, headers=SAME_ORIGIN)
    assert refused.status_code == 422 and b"petition.css" in refused.data
    pages = {"/refused": refused}

    def answer(route):  # the app in this process answers the browser, as its server would
        path = urlsplit(route.request.url).path
        response = pages.get(path) or client.get(path)
        route.fulfill(status=response.status_code, headers=dict(response.headers), body=response.get_data())

    context = chromium.new_context()
    context.route("http://plain.test/**", answer)
    page = context.new_page()
    page.goto("http://plain.test/refused")
    problems = focus_problems(page, [".error-summary a", *SIGN_CONTROLS], "#sign-heading")
    page.goto("http://plain.test/organisers/login")
    problems += focus_problems(page, LOGIN_CONTROLS, "h1")
    context.close()
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()
    assert not problems, "controls without a visible focus:\n" + "\n".join(problems)
