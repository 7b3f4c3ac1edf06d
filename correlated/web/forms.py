"""Dashboard forms (Flask-WTF: every one carries the CSRF token)."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, Regexp, ValidationError

from ..auth import PASSWORD_MIN
from ..ingest.fields import EMAIL_RE, KEY_MAX, TYPES, format_problem, key_problem

EMAIL = Regexp(EMAIL_RE, message="Enter an email address like name@company.com.")


def field_key(_form: FlaskForm, field: StringField) -> None:
    """The REST API's rule for field keys (ingest.fields.key_problem): one rule for both."""
    problem = key_problem(field.data or "")
    if problem:
        raise ValidationError(f"The key {problem}.")


FORMAT_CHOICES = [SelectChoice("", "As sent"), SelectChoice("number", "Number (1,234)"),
                  SelectChoice("percent", "Percent (12.5 → 12.5%)")] + [
    SelectChoice(f"currency:{code}", f"Currency, {code}") for code in
    ("USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "SEK", "INR", "BRL")]
OBJECT_CHOICES = [SelectChoice("account", "Account"), SelectChoice("user", "User"),
                  SelectChoice("event", "Event")]
# OBJECT and ARRAY fields are created by syncs; people pick among the scalar types.
TYPE_CHOICES = [SelectChoice(t, t.title()) for t in TYPES if t not in ("OBJECT", "ARRAY")]


class LoginForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired("Enter your email."), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired("Enter your password.")])


class PasswordForm(FlaskForm):
    current = PasswordField("Current password",
                            validators=[DataRequired("Enter your current password.")])
    password = PasswordField("New password", validators=[
        DataRequired("Enter a new password."),
        Length(min=PASSWORD_MIN, message=f"Use at least {PASSWORD_MIN} characters.")])
    confirm = PasswordField("New password again", validators=[
        EqualTo("password", message="The two new passwords differ.")])


class KeyForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired("Give the key a name."), Length(max=120)],
                       description="Where it will be used, e.g. “Hightouch production”.")


class MemberForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired("Enter an email."), Length(max=254),
                                             EMAIL])
    password = PasswordField("Initial password", validators=[
        DataRequired("Set an initial password."),
        Length(min=PASSWORD_MIN, message=f"Use at least {PASSWORD_MIN} characters.")])
    role = SelectField("Role", choices=[SelectChoice("member", "Member"),
                                        SelectChoice("admin", "Admin")], default="member")


class FieldForm(FlaskForm):
    object = SelectField("Object", choices=OBJECT_CHOICES)
    key = StringField("Key", validators=[DataRequired("Enter the field key."),
                                         Length(max=KEY_MAX), field_key])
    label = StringField("Label", validators=[DataRequired("Enter a label."), Length(max=128)])
    type = SelectField("Type", choices=TYPE_CHOICES, default="STRING")
    display_format = SelectField("Display format", choices=FORMAT_CHOICES, default="")


def display_format(_form: FlaskForm, field: StringField) -> None:
    problem = format_problem(field.data) if field.data else None
    if problem:
        raise ValidationError(f"The display format {problem}.")


class FormatForm(FlaskForm):
    """A field's display format (a free value checked by the catalog's rule: the API may have
    set a currency the page's list does not offer)."""

    display_format = StringField("Display format", validators=[Length(max=32), display_format])


class LabelForm(FlaskForm):
    label = StringField("Label", validators=[DataRequired("Enter a label."), Length(max=128)])


class OriginsForm(FlaskForm):
    origins = TextAreaField("Allowed origins", validators=[Length(max=10_000)], description=(
        "One a line, as the browser shows it: https://www.example.com (scheme, host and port; "
        "no path). * allows every site; leave it empty to allow none."))


class PostForm(FlaskForm):
    """A button that only needs the CSRF token (revoke, remove)."""
