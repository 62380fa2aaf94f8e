"""Visitor text is normalised, or refused with a reason: never silently altered."""

import unicodedata

import pytest

from petition.inputs import InvalidText, clean


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
