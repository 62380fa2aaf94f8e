"""Forms of the organisers' pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, EmailField, HiddenField, PasswordField, SelectField
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from ..countries import COUNTRIES


class LoginForm(FlaskForm):
    email = EmailField("E-mail address", validators=[DataRequired("Enter your e-mail address."), Length(max=254)],
                       render_kw={"autocomplete": "username"})
    password = PasswordField("Password", validators=[DataRequired("Enter your password."), Length(max=1000)],
                             render_kw={"autocomplete": "current-password"})


class ActionForm(FlaskForm):
    """A button that changes something: only its CSRF token travels."""


class FindForm(FlaskForm):
    """Posted, not a query string: a signer's address never goes into a URL or a log."""

    email = EmailField("Signer's e-mail address", validators=[DataRequired("Enter an e-mail address."),
                                                              Length(max=254)])


class Confirmation:
    """The second step of an erasure: only the confirmation page's post carries ``confirmed``."""

    YES = "yes"
    confirmed = HiddenField()

    def is_confirmed(self) -> bool:
        return self.confirmed.data == self.YES


class EraseForm(Confirmation, FlaskForm):
    back = HiddenField()  # "find": back to the search page; else to the petition's


class EraseSubmissionsForm(Confirmation, FindForm):
    """The address travels in the posted form, hidden on the confirmation page, never in a URL."""


class ExportForm(FlaskForm):
    """Filters of a signer list; read from the query string of a download link (no state changes)."""

    class Meta:
        csrf = False

    status = SelectField("Signatures", choices=[SelectChoice("confirmed", "Confirmed only"),
                                                SelectChoice("all", "All: confirmed and held")],
                         default="confirmed")
    since = DateField("Signed from", validators=[Optional()])
    until = DateField("Signed until", validators=[Optional()])
    country = SelectField("Country", choices=[SelectChoice("", "All countries")]
                          + [SelectChoice(code, name) for code, name in COUNTRIES], default="")
    updates = BooleanField("Only those who asked to be kept informed")

    def validate_until(self, field) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("The end date is before the start date.")
