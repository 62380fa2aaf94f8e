"""Visitor text is normalised, or refused with a reason: never silently altered."""

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petition.inputs import InvalidText, clean, undecodable_form


def test_text_is_nfc_normalised_and_trimmed():
    decomposed = unicodedata.normalize("NFD", "  Zhanaözen Café  ")
    assert clean(decomposed) == "Zhanaözen Café"
    assert clean(None) == ""


def test_comments_keep_their_line_breaks_as_newlines():
    assert clean("one\r\ntwo\rthree\tfour", multiline=True) == "one\ntwo\nthree\tfour"


@pytest.mark.parametrize("hostile", [
    "nul\x00byte", "bell\x07", "escape\x1b[31m", "delete\x7f", "c1\x85control",
    "right\u202eto-left override", "isolate\u2066x\u2069", "private\ue000use",
    "bad bytes \ufffd here",
])
def test_control_and_invisible_characters_are_refused(hostile):
    with pytest.raises(InvalidText):
        clean(hostile)
    with pytest.raises(InvalidText):
        clean(hostile, multiline=True)


def test_a_line_break_is_refused_in_a_one_line_field():
    with pytest.raises(InvalidText, match="U\\+000A"):
        clean("two\nlines")


def test_joiners_used_by_real_scripts_are_accepted():
    assert clean("می\u200cخواهم") == "می\u200cخواهم"  # Persian zero-width non-joiner


def _field_by_field_undecodable(body: bytes) -> bool:
    """The plain reading of the rule: some name or value, raw or percent-decoded, is not UTF-8."""
    from urllib.parse import parse_qsl

    try:
        parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return True
    return False


_form_bytes = st.lists(st.one_of(
    st.sampled_from([b"&", b"=", b"+", b"%", b"%26", b"%3D", b"%C3", b"%A9", b"%FF", b"%E2%82", b"%AC", b"%zz"]),
    st.binary(max_size=4), st.text(max_size=4).map(str.encode)), max_size=12).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(body=_form_bytes)
def test_a_form_is_undecodable_exactly_when_one_of_its_fields_is(body):
    assert undecodable_form(body) == _field_by_field_undecodable(body)


@pytest.mark.parametrize("body, bad", [
    (b"name=Vadim&email=a%40example.org", False), (b"name=%D0%92%D0%B0%D0%B4%D0%B8%D0%BC", False),
    (b"name=Vad%FFim", True), (b"name=%C3&x=%A9", True), (b"name=Vad\xffim", True), (b"name=%C3%28", True),
    (b"name=%C3\x80", True),  # a raw byte that only an escape before it makes look like text
])
def test_undecodable_forms(body, bad):
    assert undecodable_form(body) is bad

