"""The /connections page: setup instructions, inbound webhook connections, ingest log."""
from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from ..protocols import connections as service
from ..extensions import db
from .forms import PostForm
from ..models import IngestLog, WebhookConnection
from ..protocols.webhooks import connection_url, public_base_url
from .blueprint import bp
from .common import require_admin, workspace_id

LOG_LIMIT = 50
PROTOCOLS = [("", "All protocols"), ("hightouch", "Hightouch custom destination"),
             ("webhook", "Hightouch webhook"), ("connection", "Webhook connections"),
             ("census", "Census"), ("segment", "Segment SDKs"), ("api", "REST API")]
OBJECT_CHOICES = [SelectChoice("account", "Accounts"), SelectChoice("user", "Users (contacts)"),
                  SelectChoice("event", "Events")]
BEHAVIOR_CHOICES = [SelectChoice("upsert", "Upsert: create new records, update existing ones"),
                    SelectChoice("update", "Update only: change existing records, never create")]
# What each mapping setting is, per object, in the order the editor shows them.
MAPPING_LABELS: dict[str, list[tuple[str, str, str]]] = {
    "account": [
        ("id_field", "Account ID", "Matched first."),
        ("name_field", "Account name", "Used when no account has the ID (or no ID is sent)."),
        ("match_property", "Custom matching: our property",
         "Match on a dimension instead, e.g. domain (update only)."),
        ("match_field", "Custom matching: payload key", "Where the row carries that value."),
    ],
    "user": [
        ("id_field", "User ID", "Matched first."),
        ("email_field", "Email", "Used when no user has the ID (case-insensitive)."),
        ("match_property", "Custom matching: our property", "Match on a dimension (update only)."),
        ("match_field", "Custom matching: payload key", "Where the row carries that value."),
        ("account_id_field", "Account ID of the user", "Links the user to an account."),
        ("account_name_field", "Account name of the user",
         "Links by the account's name when no account ID is sent."),
    ],
    "event": [
        ("event_field", "Event type", "The key naming the event, e.g. type."),
        ("event_name", "…or a fixed event name", "Every row is this event, e.g. Deal Won."),
        ("user_id_field", "User ID", "The event also counts for the user's account."),
        ("account_id_field", "Account ID", "For account-level events without a user."),
        ("timestamp_field", "Timestamp", "ISO 8601; the received time when left empty."),
        ("event_id_field", "Event ID", "De-duplicates retries."),
    ],
}
FREE_TEXT = {"event_name", "match_property"}  # not payload keys: no suggestions


class NewConnectionForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired("Give the connection a name."),
                                           Length(max=service.NAME_MAX)])
    object = SelectField("Object", choices=OBJECT_CHOICES)
    behavior = SelectField("Behavior", choices=BEHAVIOR_CHOICES)


class SettingsForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired("Give the connection a name."),
                                           Length(max=service.NAME_MAX)])
    behavior = SelectField("Behavior", choices=BEHAVIOR_CHOICES)
    enabled = BooleanField("Enabled: write what arrives")
    enforce_auth = BooleanField("Enforce the Authorization header")


class MappingForm(FlaskForm):
    wrapper = StringField("Data wrapper path", validators=[Length(max=255)])
    enable = BooleanField("Enable the connection when saved", default=True)


for _key in {k for labels in MAPPING_LABELS.values() for k, _l, _h in labels}:
    setattr(MappingForm, _key, StringField(_key, validators=[Length(max=255)]))


# --- the page -------------------------------------------------------------------------------

@bp.get("/connections")
def connections():
    """Setup steps with this server's URLs, the webhook connections, and the ingest log."""
    protocol = request.args.get("protocol", "")
    return render_template(
        "connections/index.html", base=public_base_url(), form=NewConnectionForm(),
        connections=service.list_connections(db.session, workspace_id()),
        log=recent_log(workspace_id(), protocol), protocol=protocol, protocols=PROTOCOLS)


def recent_log(ws_id: int, protocol: str = "", limit: int = LOG_LIMIT) -> list[IngestLog]:
    """The latest ingest-log entries, newest first (the index on received_at serves it)."""
    query = sa.select(IngestLog).where(IngestLog.workspace_id == ws_id)
    if protocol:
        query = query.where(IngestLog.protocol == protocol)
    return list(db.session.scalars(query.order_by(IngestLog.received_at.desc()).limit(limit)))


@bp.get("/connections/log/<entry_id>")
def ingest_log_entry(entry_id: str):
    entry = db.session.get(IngestLog, (workspace_id(), entry_id))
    if entry is None:
        abort(404)
    return render_template("connections/log_entry.html", entry=entry,
                           payload=pretty(entry.payload))


@bp.post("/connections")
def create_connection():
    require_admin()
    form = NewConnectionForm()
    if not form.validate_on_submit():
        return _refused(form, url_for("dashboard.connections"))
    connection = service.create_connection(db.session, workspace_id(), form.name.data,
                                           form.object.data, form.behavior.data)
    db.session.commit()
    flash("Connection created. Paste its URL and header into Hightouch, then send a test row.",
          "success")
    return redirect(url_for("dashboard.connection", connection_id=connection.id))


# --- one connection -------------------------------------------------------------------------

@bp.get("/connections/<connection_id>")
def connection(connection_id: str):
    found = service.get_connection_or_404(db.session, workspace_id(), connection_id)
    return render_template("connections/detail.html", **_detail_context(found))


def _detail_context(found: WebhookConnection) -> dict[str, Any]:
    mapping = found.mapping or {}
    wrappers = service.wrapper_candidates(found.latest_payload)
    wrapper = service.suggested_wrapper(found)
    mapping_form = MappingForm(data={**mapping, "wrapper": wrapper, "enable": True},
                               formdata=None)
    return {
        "connection": found, "url": connection_url(found), "mapping_form": mapping_form,
        "settings": SettingsForm(obj=found, formdata=None), "labels": MAPPING_LABELS[found.object],
        "free_text": FREE_TEXT, "payload": pretty(found.latest_payload),
        "keys": service.payload_keys(found.latest_payload, wrapper), "wrappers": wrappers,
        "button": PostForm(),
    }


@bp.post("/connections/<connection_id>/settings")
def connection_settings(connection_id: str):
    require_admin()
    found = service.get_connection_or_404(db.session, workspace_id(), connection_id)
    form = SettingsForm()
    here = url_for("dashboard.connection", connection_id=found.id)
    if not form.validate_on_submit():
        return _refused(form, here)
    changes = {"name": form.name.data, "behavior": form.behavior.data,
               "enabled": form.enabled.data, "enforce_auth": form.enforce_auth.data}
    return _save(found, changes, "Settings saved.", here)


@bp.post("/connections/<connection_id>/mapping")
def connection_mapping(connection_id: str):
    require_admin()
    found = service.get_connection_or_404(db.session, workspace_id(), connection_id)
    here = url_for("dashboard.connection", connection_id=found.id)
    if found.latest_payload is None:
        flash("The mapping opens once a payload has arrived: send a test row first.", "error")
        return redirect(here)
    form = MappingForm()
    if not form.validate_on_submit():
        return _refused(form, here)
    keys = ["wrapper"] + [k for k, _l, _h in MAPPING_LABELS[found.object]]
    changes: dict[str, Any] = {"mapping": {k: form[k].data or "" for k in keys}}
    if form.enable.data:
        changes["enabled"] = True  # as Variance does: a saved mapping turns the connection on
    message = "Mapping saved; the connection is enabled." if form.enable.data else "Mapping saved."
    return _save(found, changes, message, here)


@bp.post("/connections/<connection_id>/rotate")
def connection_rotate(connection_id: str):
    require_admin()
    found = service.get_connection_or_404(db.session, workspace_id(), connection_id)
    if PostForm().validate_on_submit():
        service.rotate_token(found)
        db.session.commit()
        flash("New header value generated: update it in Hightouch, the old one no longer works.",
              "success")
    return redirect(url_for("dashboard.connection", connection_id=found.id))


@bp.post("/connections/<connection_id>/delete")
def connection_delete(connection_id: str):
    require_admin()
    found = service.get_connection_or_404(db.session, workspace_id(), connection_id)
    if not PostForm().validate_on_submit():
        return redirect(url_for("dashboard.connection", connection_id=found.id))
    db.session.delete(found)
    db.session.commit()
    flash(f"Connection “{found.name}” deleted; its URL no longer accepts data.", "success")
    return redirect(url_for("dashboard.connections"))


def _save(found: WebhookConnection, changes: dict[str, Any], message: str, here: str):
    try:
        service.update_connection(found, changes)
    except service.Invalid as exc:
        db.session.rollback()
        for key, problem in exc.errors.items():
            flash(f"{_label(found.object, key)}: {problem}", "error")
        return redirect(here)
    db.session.commit()
    flash(message, "success")
    return redirect(here)


def _label(obj: str, key: str) -> str:
    name = key.removeprefix("mapping.")
    labels = {k: label for k, label, _h in MAPPING_LABELS[obj]}
    return labels.get(name, name.replace("_", " ").capitalize())


def _refused(form: FlaskForm, target: str):
    """A form that did not validate: say why, go back (CSRFProtect checked the token already)."""
    for field in form:
        for error in field.errors:
            flash(f"{field.label.text}: {error}", "error")
    return redirect(target)


def pretty(payload: Any) -> str | None:
    return None if payload is None else json.dumps(payload, indent=2, ensure_ascii=False,
                                                   default=str)
