"""Countries as ISO 3166 alpha-2 codes with readable names (pycountry), sorted by name."""

import pycountry

COUNTRIES: list[tuple[str, str]] = sorted(
    ((c.alpha_2, getattr(c, "common_name", c.name)) for c in pycountry.countries),
    key=lambda pair: pair[1],
)
NAMES = dict(COUNTRIES)


def name(code: str) -> str:
    return NAMES.get(code, code)
