"""The organisers' chart of confirmed signatures per day: its period (opening day to today or closing), bars
that stay bars, correct plurals, and labels a phone can read (in real Chromium, in both page frames)."""

from __future__ import annotations

import shutil
import threading
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from flask_migrate import upgrade
from sqlalchemy import select
from werkzeug.serving import make_server

from petition import accounts, catalogue, charts, create_app
from petition.extensions import db, init_migrations
from petition.models import CONFIRMED, Petition, Signature, utcnow

from conftest import need

SVG = "{http://www.w3.org/2000/svg}"
OPENS, CLOSES, TODAY = date(2026, 11, 1), date(2027, 6, 30), date(2026, 12, 5)


def draw(series, opens_on=OPENS, closes_on=CLOSES, today=TODAY, closed_on=None) -> ET.Element:
    return ET.fromstring(str(charts.per_day(series, "Confirmed signatures per day: Test", opens_on=opens_on,
                                            closes_on=closes_on, today=today, closed_on=closed_on)))


def desc(svg: ET.Element) -> str:
    return svg.find(f"{SVG}desc").text


def labels(svg: ET.Element) -> list[str]:
    return [text.text for text in svg.iter(f"{SVG}text")]


def bars(svg: ET.Element) -> list[ET.Element]:
    return [rect for rect in svg.iter(f"{SVG}rect") if rect.get("class") == "bar"]


# ---------------------------------------------------------------- the period


def test_the_chart_runs_from_the_opening_day_to_today():
    svg = draw([(date(2026, 10, 20), 5), (date(2026, 12, 3), 2)])  # a test signature before the opening
    assert desc(svg) == "2 signatures from 1 November 2026 to 5 December 2026; the most, 2, on 3 December 2026."
    assert "1 Nov 2026" in labels(svg) and "5 Dec 2026 (today)" in labels(svg)
    assert len(bars(svg)) == 1


def test_the_chart_ends_on_the_closing_day_or_the_day_it_was_closed_early():
    series = [(date(2026, 11, 2), 1), (date(2026, 11, 20), 3), (date(2026, 12, 1), 4)]
    closed = draw(series, closes_on=date(2026, 11, 25))
    assert desc(closed) == "4 signatures from 1 November 2026 to 25 November 2026; the most, 3, on 20 November 2026."
    assert "25 Nov 2026" in labels(closed)
    early = draw(series, closed_on=date(2026, 11, 10))
    assert desc(early) == "1 signature from 1 November 2026 to 10 November 2026; the most, 1, on 2 November 2026."
    assert charts.period(OPENS, CLOSES, TODAY, date(2026, 11, 10)) == (OPENS, date(2026, 11, 10))


def test_a_long_petition_shows_its_last_120_days():
    first, last = charts.period(date(2026, 1, 1), CLOSES, TODAY)
    assert last == TODAY and (last - first).days + 1 == charts.MAX_DAYS
    svg = draw([(date(2026, 1, 1) + timedelta(days=n), 1) for n in range(400)], opens_on=date(2026, 1, 1))
    assert len(bars(svg)) == charts.MAX_DAYS
    assert desc(svg).startswith(f"120 signatures from {first:%-d %B %Y} to 5 December 2026")


def test_before_it_opens_the_chart_says_so():
    svg = draw([], opens_on=date(2027, 1, 1))
    assert desc(svg) == "No signatures yet: signing opens on 1 January 2027."
    assert bars(svg) == []


# ---------------------------------------------------------------- bars, axis, plurals


def test_one_day_of_signatures_is_a_bar_on_a_timeline_not_a_block():
    for opens_on in (TODAY, OPENS):  # opened today; opened a month ago with signatures on one day only
        svg = draw([(TODAY, 7)], opens_on=opens_on)
        (bar,) = bars(svg)
        assert float(bar.get("width")) <= charts.MAX_BAR < charts.WIDTH / 10
    month = draw([(TODAY, 7)])
    assert len([line for line in month.iter(f"{SVG}line") if "tick" in line.get("class", "")]) >= 30  # a day each
    assert labels(month)[0] == "1 Nov 2026" and labels(month)[1] == "5 Dec 2026 (today)"


def test_plurals():
    assert charts.signatures(1) == "1 signature" and charts.signatures(2) == "2 signatures"
    assert charts.signatures(1234) == "1,234 signatures" and charts.signatures(0) == "0 signatures"
    one = draw([(TODAY, 1)], opens_on=TODAY)
    assert desc(one) == "1 signature on 5 December 2026."
    assert bars(one)[0].find(f"{SVG}title").text == "5 Dec 2026: 1 signature"
    assert desc(draw([(TODAY, 2)], opens_on=TODAY)) == "2 signatures on 5 December 2026."
    assert desc(draw([])) == "No signatures from 1 November 2026 to 5 December 2026."


def test_text_size_comes_from_attributes_not_from_styles():
    svg = str(charts.per_day([(TODAY, 1)], "<Title & co>", opens_on=OPENS, closes_on=CLOSES, today=TODAY))
    assert "style" not in svg  # the Content-Security-Policy allows no inline styles
    assert 'role="img"' in svg and "&lt;Title &amp; co&gt;" in svg
    # Shrunk to a phone's column (about 320 CSS px), the labels keep 12 px.
    assert charts.FONT * 320 / charts.WIDTH >= 12
    assert all(text.get("font-size") == str(charts.FONT) for text in ET.fromstring(svg).iter(f"{SVG}text"))


# ---------------------------------------------------------------- in Chromium, at a phone's width

PASSWORD = "correct horse battery staple"


def chromium_path() -> str:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    need("Chromium (Debian package chromium)")


def served_app(tmp_path: Path, petitions_dir: Path, site_dir: Path):
    """The service on SQLite with ``site_dir``'s frame (or the plain one where no site is built)."""
    app = create_app({
        "TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance"),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'chart.sqlite3'}", "SECRET_KEY": "test secret key",
        "SMTP_URL": None, "BASE_URL": "http://petition.test", "PETITIONS_DIR": str(petitions_dir),
        "SITE_DIR": str(site_dir), "COUNT_CACHE_SECONDS": 0,
    })
    init_migrations(app)
    with app.app_context():
        upgrade()
        catalogue.sync(petitions_dir)
        accounts.add("organiser@example.org", PASSWORD)
        petition = db.session.scalar(select(Petition).where(Petition.slug == "vadim-kuramshin"))
        today = utcnow().date()
        petition.opens_on, petition.closes_on = today - timedelta(days=20), today + timedelta(days=30)
        for ago, number in ((0, 3), (1, 1), (25, 2)):  # the last before the opening: not shown
            when = datetime.combine(today - timedelta(days=ago), datetime.min.time()) + timedelta(hours=1)
            for n in range(number):
                email = f"s{ago}-{n}@example.org"
                db.session.add(Signature(petition_id=petition.id, name="A Signer", email=email,
                                         email_canonical=email, country="KZ", postcode="", comment="",
                                         status=CONFIRMED, public=False, updates=False,
                                         created_at=when, confirmed_at=when))
        db.session.commit()
    return app


@pytest.fixture(params=["plain frame", "site frame"])
def live_office(request, tmp_path, petitions_dir):
    if request.param == "site frame":
        from petition import embedded

        site = request.getfixturevalue("built_site")
        app = served_app(tmp_path, petitions_dir, site)
        served = embedded.site_and_service(app, site)
    else:
        served = app = served_app(tmp_path, petitions_dir, tmp_path / "no-site")
    server = make_server("127.0.0.1", 0, served, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", app
    finally:
        server.shutdown()
        thread.join(timeout=10)
        with app.app_context():
            db.engine.dispose()


@pytest.mark.slow
def test_the_chart_is_readable_on_a_phone(live_office):
    base, app = live_office
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 360, "height": 740}, device_scale_factor=2, is_mobile=True)
            blocked: list[str] = []  # the chart's own styling: attributes and classes, never inline styles
            page.on("console", lambda m: blocked.append(m.text) if "style-src" in m.text else None)
            page.goto(base + "/organisers/login")
            page.fill("#email", "organiser@example.org")
            page.fill("#password", PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/organisers/")
            page.goto(base + "/organisers/petitions/vadim-kuramshin")
            chart = page.locator("svg.chart")
            chart.wait_for()
            texts = page.evaluate("""() => [...document.querySelectorAll('svg.chart text')].map(t => {
                const box = t.getBoundingClientRect();
                return {text: t.textContent, height: box.height, left: box.left, right: box.right};
            })""")
            width = page.evaluate("document.querySelector('svg.chart').getBoundingClientRect().width")
            overflow = page.evaluate("document.documentElement.scrollWidth")
            description = page.text_content("svg.chart desc")
        finally:
            browser.close()
    today = utcnow().date()
    opens = today - timedelta(days=20)
    assert description == (f"4 signatures from {opens:%-d %B %Y} to {today:%-d %B %Y}; "
                           f"the most, 3, on {today:%-d %B %Y}.")
    assert [t["text"] for t in texts][:2] == [f"{opens:%-d %b %Y}", f"{today:%-d %b %Y} (today)"]
    assert width <= 360 and overflow <= 360, (width, overflow)
    small = [(t["text"], round(t["height"], 1)) for t in texts if t["height"] < 11]
    assert texts and not small, small
    assert all(t["left"] >= 0 and t["right"] <= 360 for t in texts), texts
    assert blocked == [], blocked
