"""Bad input, generated: properties of e-mail canonicalisation and of the sign form (hypothesis), the JSON
API against its own OpenAPI document (schemathesis), and a corpus of hostile submissions."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from petition import accounts, inputs
from petition.emails import InvalidEmail, canonical, parse
from petition.extensions import db
from petition.models import Signature, Submission

from conftest import SAME_ORIGIN, VALID, csrf_token, links_in, run_sender, submit

SIGN = "/petitions/vadim-kuramshin/sign"
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ---------------------------------------------------------------- e-mail canonicalisation

local_parts = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9._+-]{0,20}[a-zA-Z0-9]", fullmatch=True)
domains = st.sampled_from(["gmail.com", "googlemail.com", "example.org", "outlook.com", "пример.рф",
                           "mail.example.co.uk", "proton.me"])


@FAST
@given(local=local_parts, domain=domains)
def test_canonical_is_stable_and_case_blind(local, domain):
    address = f"{local}@{domain}"
    try:
        key = canonical(address)
    except InvalidEmail:
        return  # e.g. two dots in a row: refused, never crashed
    try:  # a key is its own canonical form, where it is an address at all: "a.+tag@" keys as "a.@"
        assert canonical(key) == key
    except InvalidEmail:
        assert re.search(r"[.][+]", address)
    assert canonical(address.upper()) == key
    assert canonical(f"  {address}\t") == key
    assert key == key.lower() and key.isascii()


@FAST
@given(text=st.text(max_size=300))
def test_any_text_is_an_address_or_a_clear_refusal(text):
    try:
        address = parse(text)
    except InvalidEmail as error:
        assert str(error)
    else:
        assert "@" in address.normalised and "@" in address.canonical


@FAST
@given(text=st.text(max_size=600))
def test_clean_text_has_no_control_characters_or_markup(text):
    try:
        cleaned = inputs.clean(text, multiline=True)
    except inputs.InvalidText as error:
        assert str(error)
    else:
        assert not any(ord(c) < 32 and c not in "\n\t" for c in cleaned)
        assert not re.search(r"<\s*[A-Za-z/!?]", cleaned)


@FAST
@given(text=st.text(max_size=200), multiline=st.booleans())
def test_clean_refuses_exactly_what_a_look_at_every_character_refuses(text, multiline):
    """The shortcut for printable text agrees with the check of every character."""
    import unicodedata

    def refused_by_characters(value: str) -> bool:
        value = unicodedata.normalize("NFC", value)
        if multiline:
            value = re.sub(r"\r\n?", "\n", value)
        def refused(c: str) -> bool:
            if c == "\ufffd":
                return True
            if multiline and c in "\n\t":
                return False
            return unicodedata.category(c) in ("Cc", "Cs", "Co") or c in inputs.BIDI_CONTROLS

        return any(refused(c) for c in value)

    try:
        inputs.clean(text, multiline=multiline)
    except inputs.InvalidText as error:
        assert refused_by_characters(text) or "HTML" in str(error)
    else:
        assert not refused_by_characters(text)


# ---------------------------------------------------------------- the sign form


@FAST
@given(name=st.text(max_size=150), email=st.one_of(st.text(max_size=80), st.emails()),
       country=st.one_of(st.text(max_size=4), st.sampled_from(["KZ", "GB"])),
       comment=st.text(max_size=600), postcode=st.text(max_size=50))
def test_the_form_answers_any_input_with_a_redirect_or_a_clear_refusal(app, mailbox, name, email, country, comment,
                                                                      postcode):
    """Whatever is posted, the answer is a 303 or a 4xx that says why, and whatever is taken the sender can mail
    and its owner can confirm."""
    client = app.test_client()
    response = submit(client, name=name, email=email, country=country, comment=comment, postcode=postcode)
    assert response.status_code in (303, 400, 422), response.status_code
    before = len(mailbox.messages)
    assert run_sender(app, mailbox)[1] == 0
    for message in mailbox.messages[before:]:  # none once the address has had its share of e-mails
        assert client.post(links_in(message)["confirm"], headers=SAME_ORIGIN).status_code == 303
    assert run_sender(app, mailbox)[1] == 0
    with app.app_context():
        for row in [*db.session.scalars(select(Submission)), *db.session.scalars(select(Signature))]:
            for value in (row.name, row.comment, row.postcode):
                assert not any(ord(c) < 32 and c not in "\n\t" for c in value)
                assert "<script" not in value.lower()


# ---------------------------------------------------------------- the JSON API and its OpenAPI document


def test_the_api_keeps_its_own_promises(app):
    """Every operation of /api/openapi.json, with generated arguments: no server error, answers as described."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 4

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            assert response.status_code < 500, (case.path_parameters, response.status_code)
            case.validate_response(response)

        check()


def test_the_openapi_document_is_served_and_describes_every_api_route(app, client):
    spec = client.get("/api/openapi.json").json
    assert spec["openapi"].startswith("3.")
    documented = {path.replace("{slug}", "<slug>") for path in spec["paths"]}
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")}
    assert routes - {"/api/openapi.json"} == documented


# ---------------------------------------------------------------- a hostile corpus

HOSTILE = [
    {"name": "x" * 10_000},
    {"comment": "y" * 5_000},
    {"email": "a" * 300 + "@example.org"},
    {"name": "Vadim\x00"},
    {"comment": "nul \x00 byte"},
    {"name": "\u202egnp.exe"},
    {"postcode": "\u2066isolate\u2069"},
    {"name": "<script>alert(document.cookie)</script>"},
    {"comment": "<img src=x onerror=alert(1)>"},
    {"postcode": "<svg onload=alert(1)>"},
    {"country": "<script>"},
    {"country": "KZ'; DROP TABLE signature; --"},
    {"email": "\"<script>\"@example.org"},
    {"name": "\ufffd\ufffd"},
]
# Formula injection: taken as text (a town may be "+7 727"), stored as typed, neutralised in every export.
FORMULAS = [
    {"name": "=HYPERLINK(\"http://evil.example\",\"click\")"},
    {"comment": "@SUM(1+1)*cmd|' /C calc'!A0"},
    {"postcode": "+cmd|' /C notepad'!A0"},
    {"name": "-2+3+cmd|' /C calc'!A0"},
]


class Executable(HTMLParser):
    """What a browser would run or load from a page: event-handler attributes, script bodies, media tags.
    Text and attribute values, escaped, are harmless and not reported."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag in ("img", "iframe", "object", "embed"):  # (an <svg> is caught by its on* attribute)
            self.found.append(tag)
        self.found += [f"{tag} {name}" for name, _ in attrs if name.startswith("on")]
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and "alert" in data:
            self.found.append("script")


def executable(html: str) -> list[str]:
    return Executable(html).found


def test_a_hostile_corpus_is_refused_and_leaves_no_executable_markup(app, client, mailbox):
    for fields in HOSTILE:
        response = submit(client, **fields)
        assert 400 <= response.status_code < 500, (fields, response.status_code)
        assert executable(response.get_data(as_text=True)) == [], fields

    raw = {"email": "a@example.org", "country": "KZ"}
    for body in (b"name=%FF%FE", b"name=Vad\xc3\x28im", b"name=" + b"x" * (10 * 1024 * 1024)):
        response = client.post(SIGN, data=b"&".join(f"{k}={v}".encode() for k, v in raw.items()) + b"&" + body,
                               content_type="application/x-www-form-urlencoded", headers=SAME_ORIGIN)
        assert response.status_code in (400, 413), response.status_code

    with app.app_context():
        assert db.session.scalars(select(Submission)).all() == []  # nothing hostile was stored
        accounts.add("organiser@example.org", "a long enough password")

    for n, fields in enumerate(FORMULAS):
        assert submit(client, **{**fields, "email": f"formula{n}@example.org"}).status_code == 303
    run_sender(app, mailbox)
    for message in mailbox.messages:
        assert client.post(links_in(message)["confirm"], headers=SAME_ORIGIN).status_code == 303
    with app.app_context():
        stored = {(s.name, s.postcode, s.comment) for s in db.session.scalars(select(Signature))}
    assert stored == {(f.get("name", VALID["name"]), f.get("postcode", VALID["postcode"]),
                       f.get("comment", VALID["comment"])) for f in FORMULAS}  # as typed

    token = csrf_token(client, "/organisers/login")
    client.post("/organisers/login", data={"csrf_token": token, "email": "organiser@example.org",
                                           "password": "a long enough password"})
    for path in ("/", "/api/petitions", "/organisers/", "/organisers/petitions/vadim-kuramshin",
                 "/organisers/petitions/vadim-kuramshin/report"):
        assert executable(client.get(path).get_data(as_text=True)) == [], path
    exported = client.get("/organisers/petitions/vadim-kuramshin/signatures.csv?status=all").get_data()
    rows = list(csv.reader(io.StringIO(exported.decode("utf-8-sig"))))
    assert len(rows) == 1 + len(FORMULAS)
    for row in rows[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row
    assert {row[0] for row in rows[1:]} >= {"'" + f["name"] for f in FORMULAS if "name" in f}
