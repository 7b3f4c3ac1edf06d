"""Fields: the catalog per object, with how many records carry each field; add, relabel, hide
and delete."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for

from .. import database
from ..ingest import catalog as field_catalog
from ..ingest import fields as catalog_fields
from ..extensions import db
from .forms import FORMAT_CHOICES, FieldForm, FormatForm, LabelForm
from ..analytics.listing import usable_key
from ..models import RECORDS, Field
from ..vocabulary import OBJECTS
from .blueprint import bp
from .common import require_admin, workspace_id

SAMPLE_EVENTS = 10_000  # event properties are counted over the newest events only
COUNTS_PER_QUERY = 400  # columns per usage query: under SQLite's and PostgreSQL's limits


@bp.get("/fields")
def fields():
    """Default and custom fields of accounts, users and events, with usage counts."""
    ws = workspace_id()
    obj = request.args.get("object", "account")
    if obj not in OBJECTS:
        obj = "account"
    catalog = sorted(catalog_fields.load_catalog(db.session, ws, obj).values(),
                     key=lambda f: (f.key not in catalog_fields.CORE[obj], not f.is_default,
                                    f.label.lower()))
    counts, total = usage(ws, obj, catalog)
    return render_template("fields/index.html", obj=obj, catalog=catalog, counts=counts,
                           total=total, core=catalog_fields.CORE[obj],
                           form=FieldForm(object=obj), label_form=LabelForm(),
                           cap=field_catalog.MAX_CUSTOM_FIELDS,
                           custom=sum(1 for f in catalog if not f.is_default),
                           format_choices=FORMAT_CHOICES,
                           sample=SAMPLE_EVENTS if obj == "event" else None)


def usage(ws: int, obj: str, catalog: list[Field]) -> tuple[dict[str, int], int]:
    """How many live records have each field (events: among the newest SAMPLE_EVENTS)."""
    source = _source(ws, obj)
    json_column = source.c.properties if obj == "event" else source.c.traits
    columns = {}
    for f in catalog:
        if f.key in catalog_fields.CORE[obj]:
            columns[f.key] = sa.func.count(source.c[f.key])
        elif usable_key(f.key):
            columns[f.key] = sa.func.count(_as_text(json_column, f.key))
    counts: dict[str, int] = {}
    total = 0
    keys = list(columns)
    # A catalog from before the cap can hold thousands of fields: a few columns per query.
    for start in range(0, max(len(keys), 1), COUNTS_PER_QUERY):
        part = keys[start:start + COUNTS_PER_QUERY]
        labelled = [columns[k].label(f"c{i}") for i, k in enumerate(part)]
        row = db.session.execute(sa.select(sa.func.count(), *labelled).select_from(source)).one()
        counts.update({key: int(row[i + 1]) for i, key in enumerate(part)})
        total = int(row[0])
    return counts, total


def _source(ws: int, obj: str) -> Any:
    table = RECORDS[obj]
    query = sa.select(table).where(table.c.workspace_id == ws)
    if obj == "event":
        query = query.order_by(table.c.timestamp.desc()).limit(SAMPLE_EVENTS)
    else:
        query = query.where(table.c.archived_at.is_(None))
    return query.subquery()


def _as_text(column: Any, key: str) -> Any:
    return column[key].as_string()


@bp.post("/fields")
def create_field():
    """A custom field, before any sync sends it (so its type is chosen, not guessed)."""
    require_admin()
    ws = workspace_id()
    form = FieldForm()
    obj = form.object.data if form.object.data in OBJECTS else "account"
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
        return redirect(url_for("dashboard.fields", object=obj))
    key = form.key.data.strip()
    label = form.label.data.strip()
    database.begin_write(db.session)
    try:
        field_catalog.create(db.session, ws, obj, key, form.type.data, label,
                             form.display_format.data or None)
        db.session.commit()
    except field_catalog.FieldExists:
        db.session.rollback()
        flash(f"The {obj} field “{key}” already exists (or is a core field's alias).", "error")
        return redirect(url_for("dashboard.fields", object=obj))
    except field_catalog.CatalogError as exc:
        db.session.rollback()
        flash(f"No field added: {exc}.", "error")
        return redirect(url_for("dashboard.fields", object=obj))
    flash(f"Custom field “{label}” ({key}) added to {obj}s.", "success")
    return redirect(url_for("dashboard.fields", object=obj))


@bp.post("/fields/<obj>/<path:key>/hidden")
def hide_field(obj: str, key: str):
    """Hide a custom field from pickers, lists, CSV and syncs' field lists (or show it again)."""
    require_admin()
    hidden = request.form.get("hidden") == "true"
    with _custom_field_change():
        database.begin_write(db.session)
        field = field_catalog.set_hidden(db.session, workspace_id(), obj, key, hidden)
        db.session.commit()
        flash(f"“{field.label}” is now {'hidden' if hidden else 'shown'}.", "success")
    return redirect(url_for("dashboard.fields", object=obj))


@bp.post("/fields/<obj>/<path:key>/delete")
def delete_field(obj: str, key: str):
    """Delete a custom field and its values from every record."""
    require_admin()
    with _custom_field_change():
        database.begin_write(db.session)
        removed = field_catalog.delete(db.session, workspace_id(), obj, key)
        db.session.commit()
        flash(f"Deleted the {obj} field “{key}” and its values from {removed:,} records.",
              "success")
    return redirect(url_for("dashboard.fields", object=obj))


@contextmanager
def _custom_field_change() -> Iterator[None]:
    """A refused change flashed (a missing field is a 404); CSRFProtect checked the token."""
    try:
        yield
    except field_catalog.NoSuchField:
        db.session.rollback()
        abort(404, "No such field in this workspace.")
    except field_catalog.CatalogError as exc:
        db.session.rollback()
        flash(f"{exc}.", "error")


@bp.post("/fields/<obj>/<path:key>/label")
def rename_field(obj: str, key: str):
    """Change a field's label (its key, which syncs send, stays)."""
    require_admin()
    ws = workspace_id()
    field = db.session.get(Field, (ws, obj, key)) if obj in OBJECTS else None
    if field is None:
        abort(404, "No such field in this workspace.")
    form = LabelForm()
    if form.validate_on_submit():
        field.label = form.label.data.strip()
        db.session.commit()
        flash(f"“{key}” is now labelled “{field.label}”.", "success")
    else:
        flash("Enter a label of at most 128 characters.", "error")
    return redirect(url_for("dashboard.fields", object=obj))


@bp.post("/fields/<obj>/<path:key>/format")
def format_field(obj: str, key: str):
    """Choose how the dashboards show a field's values (number, percent, a currency)."""
    require_admin()
    field = db.session.get(Field, (workspace_id(), obj, key)) if obj in OBJECTS else None
    if field is None:
        abort(404, "No such field in this workspace.")
    form = FormatForm()
    if form.validate_on_submit():
        field.display_format = form.display_format.data or None
        db.session.commit()
        flash(f"“{field.label}” is now shown as: {_format_name(field.display_format)}.",
              "success")
    else:
        for error in form.display_format.errors or ["The form expired: try again."]:
            flash(error, "error")
    return redirect(url_for("dashboard.fields", object=obj))


def _format_name(display_format: str | None) -> str:
    labels = {c.value: c.label for c in FORMAT_CHOICES}
    return labels.get(display_format or "", display_format or "")
