"""Canonical e-mail addresses: one key per mailbox, so one signature per person."""

import pytest

from petition.emails import InvalidEmail, canonical, parse


@pytest.mark.parametrize("a, b", [
    ("Supporter@Example.org", "supporter@example.org"),
    ("  supporter@example.org\t", "supporter@example.org"),
    ("supporter@EXAMPLE.ORG", "supporter@example.org"),
    ("john.smith@gmail.com", "johnsmith@gmail.com"),
    ("John.Smith+petition@gmail.com", "johnsmith@gmail.com"),
    ("johnsmith@googlemail.com", "johnsmith@gmail.com"),
    ("someone+kz@outlook.com", "someone@outlook.com"),
    ("someone+kz@proton.me", "someone@proton.me"),
    ("vadim@пример.рф", "vadim@xn--e1afmkfd.xn--p1ai"),
    ("vadim@ПРИМЕР.РФ", "vadim@пример.рф"),
])
def test_the_same_mailbox_has_one_key(a, b):
    assert canonical(a) == canonical(b)


@pytest.mark.parametrize("a, b", [
    ("a+b@example.org", "a@example.org"),  # unknown providers may treat tags as other mailboxes
    ("j.smith@example.org", "jsmith@example.org"),  # dots matter outside Gmail
    ("someone@gmail.com", "someone@yahoo.com"),
])
def test_different_mailboxes_stay_apart(a, b):
    assert canonical(a) != canonical(b)


def test_the_address_to_write_to_keeps_what_the_signer_typed():
    address = parse("  John.Smith+petition@GMAIL.com ")
    assert address.normalised == "John.Smith+petition@gmail.com"
    assert address.canonical == "johnsmith@gmail.com"


@pytest.mark.parametrize("bad", [
    "", "no-at-sign", "two@@example.org", "a@b", "spaces in@example.org", "a@-example.org",
    "x" * 65 + "@example.org", "a@" + "b" * 250 + ".org", "<script>@example.org",
    "=cmd|'/c calc'!A1@example.org", "a\u202e@example.org",
])
def test_bad_addresses_are_refused_with_a_reason(bad):
    with pytest.raises(InvalidEmail) as caught:
        parse(bad)
    assert str(caught.value)
