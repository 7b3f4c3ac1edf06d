"""The /connections page: setup instructions, inbound webhook connections, ingest log."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
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
from ..models import IngestLog, WebhookConnection, utcnow
from ..errors import ApiError
from ..protocols.webhooks import connection_url, public_base_url, replay
from .blueprint import bp
from .common import require_admin, workspace_id

LOG_PER_PAGE = 25
REJECTED_DAYS = 7  # the ingest log's banner counts the rejected rows of this many days
STATUSES = [("", "Any outcome"), ("stored", "Stored"), ("partial", "Partly stored"),
            ("rejected", "Every row rejected"), ("refused", "Refused"),
            ("failed", "Database error")]
LOG_OBJECTS = [("", "Any object"), ("account", "Accounts"), ("user", "Users"),
               ("event", "Events"), ("mixed", "Several")]
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
    all_or_nothing = BooleanField("All or nothing: refuse the whole batch (422) when any row is "
                                  "rejected, so the sender retries it")


class MappingForm(FlaskForm):
    wrapper = StringField("Data wrapper path", validators=[Length(max=255)])
    enable = BooleanField("Enable the connection when saved", default=True)


for _key in {k for labels in MAPPING_LABELS.values() for k, _l, _h in labels}:
    setattr(MappingForm, _key, StringField(_key, validators=[Length(max=255)]))


# --- the page -------------------------------------------------------------------------------

@bp.get("/connections")
def connections():
    """Setup steps with this server's URLs, the webhook connections, and the ingest log."""
    wanted = LogFilter.from_args(request.args)
    entries, total = log_page(db.session, workspace_id(), wanted)
    return render_template(
        "connections/index.html", base=public_base_url(), form=NewConnectionForm(),
        connections=service.list_connections(db.session, workspace_id()),
        log=entries, log_total=total, log_pages=max(1, -(-total // LOG_PER_PAGE)),
        wanted=wanted, protocol=wanted.protocol, protocols=PROTOCOLS, statuses=STATUSES,
        log_objects=LOG_OBJECTS, log_per_page=LOG_PER_PAGE,
        rejected_recent=recent_rejections(db.session, workspace_id()), rejected_days=REJECTED_DAYS)


@dataclass(frozen=True)
class Rejections:
    requests: int
    rows: int


def recent_rejections(session: Any, ws_id: int) -> Rejections:
    """How many requests of the last REJECTED_DAYS had rejected rows, and how many rows."""
    since = utcnow() - timedelta(days=REJECTED_DAYS)
    requests, rows = session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(IngestLog.rows_rejected), 0))
        .where(IngestLog.workspace_id == ws_id, IngestLog.rows_rejected > 0,
               IngestLog.received_at >= since)).one()
    return Rejections(int(requests), int(rows))


@dataclass(frozen=True)
class LogFilter:
    """Which ingest-log entries to list: surface, outcome, object, rejected rows only, page."""

    protocol: str = ""
    status: str = ""
    object: str = ""
    rejected_only: bool = False
    page: int = 1

    @classmethod
    def from_args(cls, args: Any) -> "LogFilter":
        def choice(name: str, choices: list[tuple[str, str]]) -> str:
            value = args.get(name, "")
            return value if value in dict(choices) else ""
        return cls(choice("protocol", PROTOCOLS), choice("status", STATUSES),
                   choice("object", LOG_OBJECTS), args.get("rejected") == "1",
                   max(1, args.get("log_page", 1, type=int)))

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query parameters for a link to this list (with some changed)."""
        state = {"protocol": self.protocol, "status": self.status, "object": self.object,
                 "rejected": "1" if self.rejected_only else "", "log_page": self.page}
        state.update(changes)
        return {k: v for k, v in state.items() if v and not (k == "log_page" and v == 1)}


def _status_condition(status: str) -> Any:
    """An outcome as SQL over the entry's counts (the same words as log_outcome below)."""
    log = IngestLog
    failed = log.error.startswith("database error")
    return {"failed": failed,
            "refused": sa.and_(log.error.is_not(None), sa.not_(failed)),
            "rejected": sa.and_(log.error.is_(None), log.rows_rejected > 0,
                                log.rows_accepted == 0),
            "partial": sa.and_(log.error.is_(None), log.rows_rejected > 0, log.rows_accepted > 0),
            "stored": sa.and_(log.error.is_(None), log.rows_rejected == 0)}[status]


def log_page(session: Any, ws_id: int, wanted: LogFilter) -> tuple[list[IngestLog], int]:
    """One page of ingest-log entries, newest first, and how many match (every request,
    refused ones included)."""
    where = [IngestLog.workspace_id == ws_id]
    if wanted.protocol:
        where.append(IngestLog.protocol == wanted.protocol)
    if wanted.status:
        where.append(_status_condition(wanted.status))
    if wanted.object:
        where.append(IngestLog.object == wanted.object)
    if wanted.rejected_only:
        where.append(IngestLog.rows_rejected > 0)
    total = session.scalar(sa.select(sa.func.count()).select_from(IngestLog).where(*where))
    query = (sa.select(IngestLog).where(*where).order_by(IngestLog.received_at.desc())
             .limit(LOG_PER_PAGE).offset((wanted.page - 1) * LOG_PER_PAGE))
    return list(session.scalars(query)), int(total)


@bp.app_template_filter("log_outcome")
def log_outcome(entry: IngestLog) -> dict[str, str]:
    """What a request actually did, in words: {"kind", "text"} (kind: the status filter's)."""
    if entry.error:
        failed = entry.error.startswith("database error")
        return {"kind": "failed" if failed else "refused",
                "text": "database error, nothing stored" if failed else "refused, nothing stored"}
    counts = entry.counts
    if counts is None:  # logged before the counts were kept
        parts = [f"{entry.rows_accepted:,} stored"] if entry.rows_accepted else []
    else:
        parts = [f"{counts[k]:,} {word}" for k, word in (
            ("created", "created"), ("updated", "updated"), ("removed", "removed"),
            ("duplicates", "duplicate" if counts.get("duplicates") == 1 else "duplicates"))
            if counts.get(k)]
        unchanged = entry.rows_accepted - sum(counts.values())
        if unchanged > 0:
            parts.append(f"{unchanged:,} unchanged")
    if entry.rows_rejected:
        parts.append(f"{entry.rows_rejected:,} rejected")
    kind = "partial" if entry.rows_rejected and entry.rows_accepted else \
        "rejected" if entry.rows_rejected else "stored"
    if not parts:
        parts = ["nothing to store"]
    elif counts is not None and not any(counts[k] for k in ("created", "updated", "removed")) \
            and not entry.rows_rejected:
        parts.append("nothing new")
    return {"kind": kind, "text": ", ".join(parts)}


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
        "button": PostForm(), "held": service.held_count(db.session, found),
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
               "enabled": form.enabled.data, "enforce_auth": form.enforce_auth.data,
               "all_or_nothing": form.all_or_nothing.data}
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


@bp.post("/connections/<connection_id>/replay")
def connection_replay(connection_id: str):
    """Write what the connection held while disabled (the mapping saved since applies)."""
    require_admin()
    found = service.get_connection_or_404(db.session, workspace_id(), connection_id)
    here = url_for("dashboard.connection", connection_id=found.id)
    if not PostForm().validate_on_submit():
        return redirect(here)
    try:
        summary = replay(found)
    except ApiError as exc:
        flash(exc.message, "error")
        return redirect(here)
    kept = [r for r in summary["requests"] if not r["replayed"]]
    flash(f"{summary['replayed']:,} held request(s) written; see the ingest log for each.",
          "success" if not kept else "info")
    for r in kept[:5]:
        flash(f"Still held, request of {r['received_at']}: {r['error']}", "error")
    return redirect(here)


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
