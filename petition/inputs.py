"""What the service accepts as text from a visitor, and the exact reason when it refuses.

Text is normalised to NFC (so the same name typed on two keyboards is the same name) and refused, never
silently altered, when it carries control characters, direction overrides or undecodable bytes. Text that
merely begins like a spreadsheet formula ("+7 727", "- my comment") is ordinary text: the exports neutralise
it where it would lead a cell.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote_to_bytes

# Bidirectional embeddings, overrides and isolates can make a name display as something else.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
NEWLINES = re.compile(r"\r\n?")
# Something a browser could read as a tag; no name, town or comment needs one.
MARKUP = re.compile(r"<\s*[A-Za-z/!?]")


class InvalidText(ValueError):
    """Text refused; the message is shown beside the field."""


def clean(value: str | None, *, multiline: bool = False) -> str:
    """NFC-normalised, trimmed text; raise ``InvalidText`` for characters no person types."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFC", value)
    if multiline:
        text = NEWLINES.sub("\n", text)
    # Printable text holds no character of category C (controls, surrogates, private use, and formats such as
    # the bidi controls): then only the replacement character needs looking for, with no loop in Python.
    if not text.isprintable() or "\ufffd" in text:
        _refuse_characters(text, multiline)
    text = text.strip()
    if MARKUP.search(text):
        raise InvalidText("cannot contain HTML tags (text between < and >)")
    return text


def _refuse_characters(text: str, multiline: bool) -> None:
    for char in text:
        if char == "\ufffd":
            raise InvalidText("contains bytes that are not valid text (UTF-8); please type it again")
        if multiline and char in "\n\t":
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Cs", "Co") or char in BIDI_CONTROLS:
            raise InvalidText(f"contains an invisible control character (U+{ord(char):04X}); please remove it")


def undecodable_form(body: bytes) -> bool:
    """True when a urlencoded body holds bytes, raw or percent-encoded, that are not UTF-8.

    The form parser would otherwise drop the whole form (raw bytes) or keep ``%FF`` as literal text.
    """
    # Decoded whole rather than field by field: "&" and "=" are ASCII, never part of a multi-byte sequence,
    # so the whole body is UTF-8 exactly when every name and value in it is. The raw bytes first: a raw byte
    # that is no text can make a valid sequence with an escape before it ("%C3" and a raw 0x80).
    try:
        body.decode("utf-8")
        unquote_to_bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
