"""The REST API (/api/v1): a thin adapter over the ingestion engine, and reads of what it stored.

Every request is scoped to the workspace of its API key; another workspace's IDs are 404s.
"""
from __future__ import annotations

import base64
import binascii
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import orjson
import sqlalchemy as sa
from flask import Blueprint, Response, g, jsonify
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from .. import csvexport, database
from . import export, schemas
from ..ingest import catalog as field_catalog
from ..ingest import fields as catalog
from ..auth import require_key
from ..errors import ApiError
from ..extensions import db
from ..ingest.contract import Batch, Result, Submission
from ..ingest.engine import submit
from ..models import RECORDS, Field, utcnow
from ..vocabulary import COLLECTION as COLLECTION_OF
from ..vocabulary import DEFAULT_MODE, ID_FIELD
from .body import current_workspace, json_body, load, load_query, rows_of

bp = Blueprint("api", __name__, url_prefix=schemas.API_PREFIX)

COLLECTIONS = {collection: obj for obj, collection in COLLECTION_OF.items()}
COLLECTION = f"<any({', '.join(COLLECTIONS)}):collection>"
EXPORT_CHUNK = 1000  # rows per query while streaming a CSV export


# --- writes ---------------------------------------------------------------------------------

@bp.post(f"/{COLLECTION}")
@require_key()
def write(collection: str) -> tuple[Response, int]:
    """Upsert/update/remove accounts or users, insert/remove events."""
    obj = COLLECTIONS[collection]
    mode = load_query(schemas.WRITE_QUERIES[obj]).get("mode", DEFAULT_MODE[obj])
    rows = rows_of(json_body(), keys=("batch",))
    return write_response(_submit(obj, mode, rows))


def _submit(obj: str, operation: str, rows: list) -> Result:
    outcome = submit(db.session, current_workspace(), Submission("api", [Batch(obj, operation,
                                                                               rows)]))
    return outcome.results[0]


def write_response(result: Result) -> tuple[Response, int]:
    """200 with counts and rejections; 422 when every row was rejected; 503 on a database error."""
    body = result.to_dict()
    if result.error:
        return jsonify(schemas.WriteResult().dump({**body, "error": result.error})), 503
    status = 422 if result.rejected and not result.accepted else 200
    return jsonify(schemas.WriteResult().dump(body)), status


@bp.delete(f"/{COLLECTION}/<path:record_id>")
@require_key()
def delete_record(collection: str, record_id: str) -> tuple[Response, int]:
    """Archive an account or user, delete an event (through the engine's remove operation)."""
    obj = COLLECTIONS[collection]
    find(obj, record_id)
    return write_response(_submit(obj, "remove", [{ID_FIELD[obj]: record_id}]))


# --- reads ----------------------------------------------------------------------------------

@bp.get(f"/{COLLECTION}")
@require_key()
def list_records(collection: str) -> Response:
    """A page of records (keyset on the ID), or every matching record as CSV; accounts and
    users with their `include=` blocks (protocols/export.py)."""
    obj = COLLECTIONS[collection]
    args = load_query(schemas.LIST_QUERIES[obj])
    names = export.parse_include(obj, args.get("include")) if obj != "event" else []
    if "metrics" in names:
        from ..analytics.summaries import ensure_fresh

        ensure_fresh(db.session, g.principal.workspace_id)  # a unit of work of its own, first
    query = filtered(obj, args)
    if args["format"] == "csv":
        return csv_export(collection, obj, query, names)
    limit = min(args["limit"], schemas.MAX_LIMIT)
    started = None
    if args.get("cursor"):  # an empty cursor is the first page
        last_id, started = decode_cursor(obj, args["cursor"])
        query = after(obj, query, last_id)
    started = started or utcnow()  # when the first page was read: the next pull's start
    rows = db.session.execute(query.limit(limit + 1)).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    body: dict[str, Any] = {
        "data": page_out(obj, rows, names),
        "next_cursor": encode_cursor(obj, rows[-1][ID_FIELD[obj]], started) if more else None}
    if obj != "event":
        body["next_updated_since"] = export.next_updated_since(started)
    return jsonify(body)


def page_out(obj: str, rows: list[RowMapping], names: list[str]) -> list[dict[str, Any]]:
    """The rows as the API shows them: `updated_at` as the latest change, then the includes."""
    if obj == "event":
        return schemas.OUTPUTS[obj](many=True).dump(rows)
    ws, ids = g.principal.workspace_id, [row[ID_FIELD[obj]] for row in rows]
    changed = export.with_changes(rows, obj, export.latest_changes(db.session, ws, obj, ids))
    out = schemas.OUTPUTS[obj](many=True).dump(changed)
    blocks = export.included(db.session, ws, obj, names, ids)
    for record, entity in zip(out, ids):
        record.update({name: blocks[name][entity] for name in names})
    return out


@bp.get(f"/{COLLECTION}/<path:record_id>")
@require_key()
def get_record(collection: str, record_id: str) -> Response:
    """One record; an account comes with its rolled-up metrics."""
    obj = COLLECTIONS[collection]
    row = find(obj, record_id, load_query(schemas.OneQuery)["include_archived"])
    if obj == "event":
        return jsonify(schemas.OUTPUTS[obj]().dump(row))
    from ..scores.api import scores_of_record
    from ..signals.api import memberships

    signals = memberships(g.principal.workspace_id, record_id, obj)
    scores = scores_of_record(g.principal.workspace_id, record_id, obj)
    if obj == "user":
        return jsonify(schemas.OUTPUTS[obj]().dump({**row, "signals": signals, "scores": scores}))
    from ..analytics.rollups import account_metrics, metrics_record  # pandas: only when asked for
    from ..analytics.summaries import ensure_fresh

    ensure_fresh(db.session, g.principal.workspace_id)  # a unit of work of its own, first
    frame = account_metrics(db.session, g.principal.workspace_id, [record_id])
    metrics = metrics_record(frame, record_id)
    return jsonify(schemas.AccountDetail().dump({**row, "metrics": metrics, "signals": signals,
                                                 "scores": scores}))


def find(obj: str, record_id: str, include_archived: bool = False) -> RowMapping:
    """The caller's record with this ID, or a 404 (also for another workspace's IDs)."""
    if "\x00" in record_id:  # no stored ID has one (and PostgreSQL refuses it in a query)
        raise ApiError(404, f"no {obj} with {ID_FIELD[obj]} {record_id!r}")
    table = RECORDS[obj]
    query = sa.select(table).where(table.c.workspace_id == g.principal.workspace_id,
                                   table.c[ID_FIELD[obj]] == record_id)
    if obj != "event" and not include_archived:
        query = query.where(table.c.archived_at.is_(None))
    row = db.session.execute(query).mappings().first()
    if row is None:
        raise ApiError(404, f"no {obj} with {ID_FIELD[obj]} {record_id!r}")
    return row


def filtered(obj: str, args: dict[str, Any]) -> sa.Select:
    """The caller's records of `obj` matching the list filters, in ID order."""
    table = RECORDS[obj]
    c = table.c
    query = sa.select(table).where(c.workspace_id == g.principal.workspace_id)
    for name in ("account_id", "user_id", "event"):
        if name in args:
            query = query.where(c[name] == args[name])
    if "updated_since" in args:  # the record, its metrics, signals (and scores) changed since
        query = query.where(export.changed_since(g.principal.workspace_id, obj, table,
                                                 args["updated_since"]))
    if "since" in args:
        query = query.where(c.timestamp >= args["since"])
    if "until" in args:
        query = query.where(c.timestamp < args["until"])
    if obj != "event" and not args.get("include_archived"):
        query = query.where(c.archived_at.is_(None))
    return query.order_by(c[ID_FIELD[obj]])


def after(obj: str, query: sa.Select, last_id: str) -> sa.Select:
    """Keyset pagination: the rows after `last_id` (the primary key index answers it)."""
    return query.where(RECORDS[obj].c[ID_FIELD[obj]] > last_id)


def encode_cursor(obj: str, last_id: str, started: datetime) -> str:
    """The last ID of this page, and when the first page was read (for next_updated_since)."""
    body = [obj, last_id, started.timestamp()]
    return base64.urlsafe_b64encode(orjson.dumps(body)).decode().rstrip("=")


def decode_cursor(obj: str, cursor: str) -> tuple[str, datetime | None]:
    """The last ID of the previous page and the first page's time, or a 400 for a cursor this
    list did not hand out."""
    try:
        kind, last_id, *rest = orjson.loads(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        started = datetime.fromtimestamp(rest[0], timezone.utc) if rest else None
    except (binascii.Error, ValueError, TypeError, OverflowError, OSError):
        kind = last_id = started = None
    if kind != obj or not isinstance(last_id, str) or "\x00" in last_id:
        raise ApiError(400, "cursor: not a next_cursor of this list", fields={
            "cursor": ["Not a next_cursor of this list."]})
    return last_id, started


# --- CSV ------------------------------------------------------------------------------------

RECORD_COLUMNS = {
    "account": ("account_id", "name", "created_at", "updated_at", "archived_at"),
    "user": ("user_id", "email", "account_id", "created_at", "updated_at", "archived_at"),
    "event": ("event_id", "event", "timestamp", "user_id", "account_id", "received_at"),
}
ATTRIBUTES = {"account": ("traits", "dimensions"), "user": ("traits", "dimensions"),
              "event": ("properties", "properties")}


def csv_export(collection: str, obj: str, query: sa.Select, names: list[str]) -> Response:
    """Every matching record, streamed in ID order, one column per catalog field, then the
    columns of each include."""
    columns = csv_columns(obj)
    # Read now: the rows are streamed after the view returns, when g may be gone.
    workspace_id = g.principal.workspace_id
    extra = export.csv_columns(db.session, workspace_id, obj, names) if obj != "event" else []
    headers = [header for header, _ in columns] + [header for _, header, _ in extra]

    def rows() -> Iterator[list[Any]]:
        for chunk in record_chunks(obj, query):
            if obj != "event":
                chunk = _with_blocks(workspace_id, obj, chunk, names)
            for row in chunk:
                yield [get(row) for _, get in columns] + [
                    cell(row["_included"][name]) for name, _, cell in extra]

    return csvexport.response(f"{collection}.csv", headers, rows())


def _with_blocks(ws: int, obj: str, chunk: list[RowMapping],
                 names: list[str]) -> list[dict[str, Any]]:
    """The chunk's rows with `updated_at` as the latest change and their include values."""
    ids = [row[ID_FIELD[obj]] for row in chunk]
    changed = export.with_changes(chunk, obj, export.latest_changes(db.session, ws, obj, ids))
    blocks = export.included(db.session, ws, obj, names, ids)
    for row, entity in zip(changed, ids):
        row["_included"] = {name: blocks[name][entity] for name in names}
    return changed


def csv_columns(obj: str) -> list[tuple[str, Callable[[RowMapping], Any]]]:
    """(header, getter): the record's columns, then its dimensions/properties by catalog key
    (hidden fields left out).

    A dimension named like a record column (accounts have a `created_at` dimension) is headed
    `dimensions.<key>` so neither hides the other.
    """
    record = RECORD_COLUMNS[obj]
    column, prefix = ATTRIBUTES[obj]
    core = set(catalog.CORE[obj])
    keys = db.session.scalars(
        sa.select(Field.key)
        .where(Field.workspace_id == g.principal.workspace_id, Field.object == obj,
               Field.hidden.is_(False))
        .order_by(Field.is_default.desc(), Field.key)).all()
    columns: list[tuple[str, Callable[[RowMapping], Any]]] = [
        (name, lambda row, name=name: row[name]) for name in record]
    for key in keys:
        if key in core:
            continue
        header = f"{prefix}.{key}" if key.lower() in record else key
        columns.append((header, lambda row, key=key: (row[column] or {}).get(key)))
    return columns


def record_chunks(obj: str, query: sa.Select) -> Iterator[list[RowMapping]]:
    """Every row of `query`, EXPORT_CHUNK at a time in ID order (keyset, not offset)."""
    page = query
    while True:
        rows = db.session.execute(page.limit(EXPORT_CHUNK)).mappings().all()
        if rows:
            yield list(rows)
        if len(rows) < EXPORT_CHUNK:
            return
        page = after(obj, query, rows[-1][ID_FIELD[obj]])


# --- the field catalog ----------------------------------------------------------------------

OBJECT_ORDER = sa.case({"account": 0, "user": 1, "event": 2}, value=Field.object)


@bp.get("/fields")
@require_key()
def list_fields() -> Response:
    """The catalog: core, default and custom fields of one object (or all)."""
    args = load_query(schemas.FieldQuery)
    query = sa.select(Field).where(Field.workspace_id == g.principal.workspace_id)
    if "object" in args:
        query = query.where(Field.object == args["object"])
    query = query.order_by(OBJECT_ORDER, Field.is_default.desc(), Field.key)
    return jsonify({"data": schemas.FieldOut(many=True).dump(db.session.scalars(query))})


@bp.post("/fields")
@require_key()
def create_field() -> tuple[Response, int]:
    """A custom field: 201, 409 when its key exists (or is a core field's alias)."""
    spec = field_spec(load_query(schemas.FieldQuery).get("object"), json_body())
    _begin_write()
    try:
        field = field_catalog.create(
            db.session, g.principal.workspace_id, spec["object"], spec["key"], spec["type"],
            spec.get("label"), spec.get("format"))
        db.session.commit()
    except field_catalog.CatalogError as exc:
        db.session.rollback()
        raise ApiError(409, f"key: {exc}") from None
    except IntegrityError:  # created concurrently under another spelling the index folds
        db.session.rollback()
        raise ApiError(409, f"key: the {spec['object']} field {spec['key']!r} exists") from None
    return jsonify(schemas.FieldOut().dump(field)), 201


@bp.patch("/fields/<object>/<path:key>")
@require_key()
def change_field(object: str, key: str) -> Response:
    """Hide or show a custom field."""
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "body: expected a JSON object with hidden (true or false)")
    change = load(schemas.FieldChange(), body, "body", 422)
    _begin_write()
    with _catalog_change():
        field = field_catalog.set_hidden(db.session, g.principal.workspace_id, object, key,
                                         change["hidden"])
        db.session.commit()
    return jsonify(schemas.FieldOut().dump(field))


@bp.delete("/fields/<object>/<path:key>")
@require_key()
def delete_field(object: str, key: str) -> Response:
    """Delete a custom field and remove its values from every record."""
    _begin_write()
    with _catalog_change():
        removed = field_catalog.delete(db.session, g.principal.workspace_id, object, key)
        db.session.commit()
    return jsonify(schemas.FieldDeleted().dump(
        {"object": object, "key": key, "values_removed": removed}))


def _begin_write() -> None:
    """End the read (on SQLite a write after a read can find the lock taken), begin a write."""
    db.session.commit()
    database.begin_write(db.session)


@contextmanager
def _catalog_change() -> Iterator[None]:
    """A refused change as the API's answer: 404 for no such field, 409 for a default one."""
    try:
        yield
    except field_catalog.NoSuchField as exc:
        db.session.rollback()
        raise ApiError(404, str(exc)) from None
    except field_catalog.CatalogError as exc:
        db.session.rollback()
        raise ApiError(409, f"key: {exc}") from None


def field_spec(query_object: str | None, body: Any) -> dict[str, Any]:
    """The validated field definition; the object comes from the body or ?object=."""
    if not isinstance(body, dict):
        raise ApiError(400, "body: expected a JSON object with key, type and optionally label")
    spec = load(schemas.FieldIn(), body, "body", 422)
    given = spec.get("object")
    if given and query_object and given != query_object:
        raise ApiError(422, f"object: {given!r} in the body but {query_object!r} in the query")
    spec["object"] = given or query_object
    if not spec["object"]:
        raise ApiError(422, "object: required (in the body or as ?object=)",
                       fields={"object": ["Missing data for required field."]})
    return spec


# --- the OpenAPI document -------------------------------------------------------------------

@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 document (public: it describes, it holds no data)."""
    return jsonify(schemas.openapi())
