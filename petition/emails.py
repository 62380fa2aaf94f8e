"""E-mail addresses: syntax checking and the canonical form that decides 'has this mailbox signed?'."""

from __future__ import annotations

from typing import NamedTuple

from email_validator import EmailNotValidError, validate_email

# Providers that deliver "name+tag@" to "name@"; for these a tag does not make a new signer.
PLUS_TAG_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
    "icloud.com", "me.com", "mac.com", "protonmail.com", "proton.me", "pm.me",
    "fastmail.com", "fastmail.fm", "yandex.ru", "yandex.com", "ya.ru",
})
# Gmail ignores dots in the local part.
DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
# Different names for the same mailboxes.
DOMAIN_ALIASES = {"googlemail.com": "gmail.com", "ya.ru": "yandex.ru", "yandex.com": "yandex.ru"}


class InvalidEmail(ValueError):
    """The address cannot receive mail; the message says why in words a signer understands."""


class Address(NamedTuple):
    normalised: str  # what we write to
    canonical: str  # what decides whether this mailbox has signed
    mailbox: str  # what the e-mail cap counts: every +tag variant of one mailbox, on any domain, together


def parse(address: str) -> Address:
    """Check syntax only (a DNS lookup would stall the request) and derive the canonical mailbox key."""
    try:
        result = validate_email(address.strip(), check_deliverability=False, strict=True)
    except EmailNotValidError as error:
        raise InvalidEmail(str(error)) from None
    domain = result.ascii_domain.lower()
    local = result.local_part.casefold()
    if domain in DOTLESS_DOMAINS:
        local = local.replace(".", "") or local
    untagged = local.split("+", 1)[0] or local
    # A tag makes a new signer only where the provider may deliver it elsewhere; for the e-mail cap it never
    # does, or one inbox could be sent a message per tag.
    signer = untagged if domain in PLUS_TAG_DOMAINS else local
    domain = DOMAIN_ALIASES.get(domain, domain)
    return Address(result.normalized, f"{signer}@{domain}", f"{untagged}@{domain}")


def canonical(address: str) -> str:
    return parse(address).canonical
