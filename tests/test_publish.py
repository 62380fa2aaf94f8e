"""``petition publish``: the editors' one command. A bad declaration or a failed build leaves the served site
as it was, byte for byte; a good one is served whole, by the running service too, with no restart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from petition import publishing

from conftest import ROOT, Browser, free_port, wait_until_serving

PETITION = Path(sys.executable).with_name("petition")
NEW_PETITION = """---
slug: zhanaozen-oil-workers
title: Justice for the Zhanaozen oil workers
target: The Prosecutor General of the Republic of Kazakhstan
summary: Release the oil workers jailed after the strike and investigate the shooting of December 2011.
goal: 5000
opens: 2026-01-01
closes: 2099-12-31
---

We call for the release of every oil worker still held for the Zhanaozen strike.
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the site's sources, as an editor's checkout holds them, and an instance of its own."""
    for folder in ("docs", "overrides"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    return tmp_path


def environment(project: Path, port: int = 8000) -> dict[str, str]:
    env = {**os.environ, "PETITION_INSTANCE_PATH": str(project / "instance"),
           "PETITION_BASE_URL": f"http://127.0.0.1:{port}"}
    for name in ("PETITION_SITE_DIR", "PETITION_PETITIONS_DIR", "PETITION_DATABASE_URL", "PETITION_SMTP_URL"):
        env.pop(name, None)
    return env


def petition(project: Path, *args: str, port: int = 8000) -> subprocess.CompletedProcess:
    return subprocess.run([str(PETITION), *args], cwd=project, env=environment(project, port),
                          capture_output=True, text=True, timeout=120)


def publish(project: Path, port: int = 8000) -> subprocess.CompletedProcess:
    return petition(project, "publish", port=port)


def served_files(project: Path) -> dict[str, bytes]:
    """Every file the served name leads to, by path, and where the name points."""
    site = project / "site"
    files = {path.relative_to(site).as_posix(): path.read_bytes() for path in site.rglob("*") if path.is_file()}
    files["<link>"] = os.readlink(site).encode()
    return files


def test_a_bad_declaration_or_a_failed_build_leaves_the_served_site_byte_for_byte(project):
    assert petition(project, "db", "upgrade").returncode == 0
    first = publish(project)
    assert first.returncode == 0, first.stderr
    assert (project / "site").is_symlink() and (project / "site" / "index.html").is_file()
    assert "end of life" not in first.stdout + first.stderr  # the theme's notice is not the editors' business
    before = served_files(project)
    builds = sorted(p.name for p in (project / publishing.BUILDS).iterdir())

    page = project / "docs" / "en" / "petitions" / "vadim-kuramshin.md"
    good = page.read_text(encoding="utf-8")
    page.write_text(good.replace("goal: 10000", "goal: ten thousand"), encoding="utf-8")
    bad = publish(project)
    assert bad.returncode != 0
    assert "nothing published" in bad.stderr
    assert "docs/en/petitions/vadim-kuramshin.md: field 'goal': must be a positive whole number" in bad.stderr
    assert served_files(project) == before

    # A declaration that is fine but a site that does not build (a broken link, under --strict).
    page.write_text(good, encoding="utf-8")
    about = project / "docs" / "en" / "about.md"
    about.write_text(about.read_text(encoding="utf-8") + "\n[Gone](no-such-page.md)\n", encoding="utf-8")
    broken = publish(project)
    assert broken.returncode != 0
    assert "the site did not build" in broken.stderr and "no-such-page.md" in broken.stderr
    assert "end of life" not in broken.stderr and "INFO" not in broken.stderr  # only what went wrong
    assert served_files(project) == before
    # Nothing half-built is left beside the served site.
    assert sorted(p.name for p in (project / publishing.BUILDS).iterdir()) == builds


def test_publishing_needs_no_navigation_entry_and_the_running_service_follows_at_once(project):
    port = free_port()
    assert petition(project, "db", "upgrade", port=port).returncode == 0
    assert publish(project, port).returncode == 0
    server = subprocess.Popen([str(PETITION), "serve", "--port", str(port)], cwd=project,
                              env=environment(project, port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        browser = Browser(f"http://127.0.0.1:{port}")
        wait_until_serving(browser, "/", server)
        assert browser.request("/petitions/zhanaozen-oil-workers/")[0] == 404

        # A new petition (no line added to mkdocs.yml) and a new page in the navigation.
        (project / "docs" / "en" / "petitions" / "zhanaozen-oil-workers.md").write_text(NEW_PETITION,
                                                                                       encoding="utf-8")
        (project / "docs" / "en" / "events.md").write_text("# Events\n\nVigils and meetings.\n", encoding="utf-8")
        # And a post, as the editors' part of README shows one.
        (project / "docs" / "en" / "blog" / "posts" / "2026-12-01-vigil-in-london.md").write_text(
            "---\ndate:\n  created: 2026-12-01\nauthors:\n  - campaign\ncategories:\n  - Solidarity\n"
            "description: A vigil outside the embassy.\n---\n\n# Vigil in London\n\nWe stood outside the embassy."
            "\n\n<!-- more -->\n\nMore of it.\n", encoding="utf-8")
        config = project / "mkdocs.yml"
        config.write_text(config.read_text(encoding="utf-8").replace(
            "  - About: about.md\n", "  - Events: events.md\n  - About: about.md\n"), encoding="utf-8")
        done = publish(project, port)
        assert done.returncode == 0, done.stderr
        assert "zhanaozen-oil-workers: added" in done.stdout

        status, _, page = browser.request("/petitions/zhanaozen-oil-workers/")
        assert status == 200 and "Justice for the Zhanaozen oil workers" in page
        assert 'action="/petitions/zhanaozen-oil-workers/sign"' in page and "Open for signatures" in page
        home = browser.request("/")[2]
        assert "Justice for the Zhanaozen oil workers" in home  # the home page lists it
        assert "Vigil in London" in home  # the newest post
        status, headers, _ = browser.request("/petitions/zhanaozen-oil-workers/sign", data={
            "name": "Amina", "email": "amina@example.org", "country": "KZ", "postcode": "", "comment": ""})
        assert status == 303 and headers["Location"].endswith("/petitions/zhanaozen-oil-workers/thanks/")
        assert browser.request("/petitions/zhanaozen-oil-workers/thanks/")[0] == 200
        # The site's own absolute links name the address it is served at.
        here = f"http://127.0.0.1:{port}"
        assert f'<link rel="canonical" href="{here}/petitions/zhanaozen-oil-workers/">' in page
        assert f"url=http%3A//127.0.0.1%3A{port}/petitions/zhanaozen-oil-workers/" in page  # the share links
        assert f"<link>{here}/blog/" in browser.request("/feed_rss_created.xml")[2]
        # The service's own pages wear the new frame, without a restart.
        status, _, confirmed = browser.request("/petitions/zhanaozen-oil-workers/confirmed")
        assert status == 200 and 'href="/events/"' in confirmed
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_site_folder_from_before_publish_is_replaced_by_the_link(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("old", encoding="utf-8")
    build = tmp_path / publishing.BUILDS / "20261205T000000.000000Z"
    build.mkdir(parents=True)
    (build / "index.html").write_text("new", encoding="utf-8")
    publishing.swap(site, build)
    assert site.is_symlink() and (site / "index.html").read_text(encoding="utf-8") == "new"
    [kept] = [p for p in build.parent.iterdir() if p != build]
    assert (kept / "index.html").read_text(encoding="utf-8") == "old"  # the previous build, kept once


def test_the_site_build_imports_nothing_of_the_service(tmp_path):
    """The theme's successor keeps overrides but no plugins: what builds the site must stand without Flask."""
    probe = (
        "import sys\n"
        "from mkdocs.__main__ import cli\n"
        f"cli(['build', '--strict', '-q', '-d', {str(tmp_path / 'site')!r}], standalone_mode=False)\n"
        "print(' '.join(sorted(name for name in sys.modules if name.split('.')[0] in "
        "('flask', 'flask_wtf', 'flask_login', 'flask_sqlalchemy', 'sqlalchemy', 'werkzeug', 'wtforms'))))\n"
    )
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "petitions" / "vadim-kuramshin" / "sign" / "index.html").is_file()
    assert done.stdout.strip() == ""


def test_tasks_run_publishes_for_the_address_it_serves():
    sys.path.insert(0, str(ROOT))
    try:
        import tasks
    finally:
        sys.path.remove(str(ROOT))
    assert tasks.served_address([]) == "http://127.0.0.1:8000"
    assert tasks.served_address(["--port", "8080"]) == "http://127.0.0.1:8080"
    assert tasks.served_address(["--host", "0.0.0.0", "--port=9000", "--threads", "4"]) == "http://127.0.0.1:9000"
    assert tasks.served_address(["--host", "::1"]) == "http://[::1]:8000"
