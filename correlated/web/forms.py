"""Dashboard forms (Flask-WTF: every one carries the CSRF token)."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, Regexp

from ..auth import PASSWORD_MIN

from ..ingest.fields import EMAIL_RE, KEY_MAX, TYPES

EMAIL = Regexp(EMAIL_RE, message="Enter an email address like name@company.com.")
FIELD_KEY = Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$",
                   message="Use letters, digits and underscores, starting with a letter.")
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
                                         Length(max=KEY_MAX), FIELD_KEY])
    label = StringField("Label", validators=[DataRequired("Enter a label."), Length(max=128)])
    type = SelectField("Type", choices=TYPE_CHOICES, default="STRING")


class LabelForm(FlaskForm):
    label = StringField("Label", validators=[DataRequired("Enter a label."), Length(max=128)])


class PostForm(FlaskForm):
    """A button that only needs the CSRF token (revoke, remove)."""
