"""The forms visitors fill in. Every rule is enforced here, on the server; the browser's checks are a courtesy."""

from __future__ import annotations

from markupsafe import Markup, escape
from wtforms import BooleanField, EmailField, Form, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length, StopValidation
from wtforms.widgets import Select, html_params

from .. import emails, inputs
from ..countries import COUNTRIES
from ..countries import NAMES as COUNTRY_NAMES


class CountrySelect(Select):
    """The country list, rendered once: 249 options through WTForms' widget cost more than the rest of the
    sign page together. Per request only the chosen option is marked."""

    def __init__(self) -> None:
        super().__init__()
        self.options = [("", '<option value="">Choose your country</option>')] + [
            (code, f'<option value="{escape(code)}">{escape(name)}</option>') for code, name in COUNTRIES]

    def __call__(self, field, **kwargs):
        kwargs.setdefault("id", field.id)
        chosen = field.data or ""
        options = (html.replace("<option ", "<option selected ", 1) if value == chosen else html
                   for value, html in self.options)
        return Markup(f"<select {html_params(name=field.name, **kwargs)}>" + "".join(options) + "</select>")


class Clean:
    """First validator of every text field: normalise the text, or stop with the exact reason."""

    def __init__(self, multiline: bool = False) -> None:
        self.multiline = multiline

    def __call__(self, form, field) -> None:
        try:
            field.data = inputs.clean(field.data, multiline=self.multiline)
        except inputs.InvalidText as error:
            raise StopValidation(f"{field.label.text} {error}.") from None


class ValidEmail:
    """Syntax check with email-validator; keeps the normalised address and its canonical key."""

    def __call__(self, form, field) -> None:
        try:
            address = emails.parse(field.data)
        except emails.InvalidEmail as error:
            raise StopValidation(f"Enter a valid e-mail address: {error}") from None
        field.data = address.normalised
        field.address = address


class SignForm(Form):
    """The sign form, as the built site shows it and the service checks it. A plain WTForms form: it carries
    no CSRF token and needs no session, so a visitor's browser is given nothing to keep; cross-site posts
    are refused by the browser's own signals (see ``origins``)."""

    name = StringField(
        "Full name",
        validators=[Clean(), DataRequired("Enter your full name."),
                    Length(max=100, message="Your name can be at most %(max)d characters long.")],
        render_kw={"autocomplete": "name", "maxlength": 100},
    )
    email = EmailField(
        "E-mail address",
        description="We send you a link to confirm your signature.",
        validators=[Clean(), DataRequired("Enter your e-mail address."),
                    Length(max=254, message="An e-mail address can be at most %(max)d characters long."),
                    ValidEmail()],
        render_kw={"autocomplete": "email", "maxlength": 254, "spellcheck": "false"},
    )
    # A text field wearing a select widget: SelectField would build 249 choice objects on every request.
    country = StringField(
        "Country",
        widget=CountrySelect(),
        validators=[DataRequired("Choose your country."),
                    AnyOf(COUNTRY_NAMES, message="Choose your country from the list.")],  # a dict: no scan
        render_kw={"autocomplete": "country"},
    )
    postcode = StringField(
        "Town or postcode (optional)",
        validators=[Clean(), Length(max=40, message="Town or postcode can be at most %(max)d characters long.")],
        render_kw={"autocomplete": "postal-code", "maxlength": 40},
    )
    comment = TextAreaField(
        "Comment (optional)",
        description="At most 500 characters.",
        validators=[Clean(multiline=True),
                    Length(max=500, message="Your comment is %(length)d characters long; "
                                            "at most %(max)d are allowed.")],
        # No maxlength (WTForms would add it from Length): a browser cuts a pasted comment at 500 without a
        # word; the 422 says how long it is.
        render_kw={"rows": 4, "maxlength": False},
    )
    public = BooleanField("Include my name in the list of names handed over with the petition")
    updates = BooleanField("Keep me informed about this campaign by e-mail")
