"""Census Custom API: `POST /census/rpc`, JSON-RPC 2.0 with named params.

Census maps columns to our field names itself, so `sync_batch` records go to the ingestion
engine as they are, and every record gets a result. The key comes from Census's Auth Token
(`Authorization: Bearer`), or in the URL (`?census_authentication=`, as Census documents);
observability.RedactSecrets keeps it out of request logs and the ingest log keeps only the body.
A mirror sync sends `upsert` and `delete` batches; `delete` removes as Hightouch's `remove` does.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, request

from ..auth import require_key
from ..errors import InvalidInput
from ..extensions import db
from ..ingest import fields
from ..ingest.contract import Batch, Options, Submission, refusal
from ..ingest.engine import submit
from ..models import Workspace
from ..vocabulary import ID_FIELD, MODES
from . import sync_config as sc
from .body import current_workspace
from .jsonrpc import Dispatcher, RpcError, check_rows, database_fault, translate

bp = Blueprint("census", __name__)
rpc = Dispatcher(recover=lambda: db.session.rollback())

QUERY_KEY = "census_authentication"
# What a sync may choose, per object: ours plus Census's `mirror`, which then sends `upsert`
# batches for rows added or changed and `delete` batches for rows gone from the source.
OFFERED = {obj: (*modes, "mirror") for obj, modes in MODES.items()}
# A batch's operation -> the engine's. Events are immutable: a mirror's upsert inserts them (a
# resend is stored once). `delete` removes as Hightouch's remove does: accounts and users are
# archived (or deleted, with `remove_action=delete` in the URL), events deleted by event_id.
BATCH_OPERATIONS = {
    "account": {"upsert": "upsert", "update": "update", "mirror": "upsert", "delete": "remove"},
    "user": {"upsert": "upsert", "update": "update", "mirror": "upsert", "delete": "remove"},
    "event": {"insert": "insert", "upsert": "insert", "mirror": "insert", "delete": "remove"},
}
REMOVE_ACTIONS = ("archive", "delete")
CENSUS_TYPES = {"STRING": "string", "ENUM": "string", "EMAIL": "string", "NUMBER": "float",
                "BOOLEAN": "boolean", "DATE": "date", "DATETIME": "date_time"}
# Measured on 2 cores, gunicorn -w 2: 500-record batches store 10,000-20,000 records/s on SQLite
# and PostgreSQL; ask for a quarter of that so dashboards and other syncs keep their share.
MAX_BATCH = 500
PARALLEL_BATCHES = 4
RECORDS_PER_SECOND = 5000


@bp.post("/census/rpc")
@require_key(query_param=QUERY_KEY)
def endpoint() -> Response:
    return rpc.respond(current_workspace())


# --- planning ---------------------------------------------------------------------------------

@rpc.method
def test_connection(ws: Workspace) -> dict[str, Any]:
    """The key was accepted; check the workspace's data can be read too."""
    try:
        db.session.execute(sa.select(sa.literal(1))).scalar_one()
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        return {"success": False, "error_message": f"database unavailable: {type(exc).__name__}"}
    return {"success": True}


@rpc.method
def list_objects(ws: Workspace) -> dict[str, Any]:
    """Account, User and Event; new fields are created on write when the workspace allows it."""
    objects = []
    for key, (label, _text) in sc.OBJECTS.items():
        described = {"object_api_name": key, "label": label}
        if ws.allow_custom_fields:
            described["can_create_fields"] = "on_write"
        objects.append(described)
    return {"objects": objects}


@rpc.method
def list_fields(ws: Workspace, object: Any) -> dict[str, Any]:
    """The object's default and custom fields, typed for Census."""
    obj = _object(object)
    described = [_field(obj, f) for f in sc.catalog(db.session, ws.id, obj)]
    return {"fields": [f for f in described if f is not None]}


def _field(obj: str, f: Any) -> dict[str, Any] | None:
    # Census needs an identifier on every object; events are matched on their event_id.
    identifiers = sc.IDENTIFIERS[obj] or (ID_FIELD[obj],)
    array = f.type == "ARRAY"
    census_type = "string" if array else CENSUS_TYPES.get(f.type)
    if census_type is None:
        return None  # objects have no Census type; send them through Hightouch or the REST API
    required = f.key in fields.required_fields(obj, "upsert") or f.key in identifiers
    return {"field_api_name": f.key, "label": f.label, "identifier": f.key in identifiers,
            "required": required, "createable": True, "updateable": f.key != ID_FIELD[obj],
            "type": census_type, "array": array}


@rpc.method
def supported_operations(ws: Workspace, object: Any) -> dict[str, Any]:
    """Upsert, update and mirror for accounts and users; insert and mirror for events."""
    return {"operations": list(OFFERED[_object(object)])}


@rpc.method
def get_sync_speed(ws: Workspace, sync_plan: Any = None) -> dict[str, Any]:
    """Batches within the per-request row limit."""
    return {"maximum_batch_size": min(MAX_BATCH, current_app.config["MAX_ROWS_PER_REQUEST"]),
            "maximum_parallel_batches": PARALLEL_BATCHES,
            "maximum_records_per_second": RECORDS_PER_SECOND}


# --- execution --------------------------------------------------------------------------------

@rpc.method
def sync_batch(ws: Workspace, sync_plan: Any, records: Any) -> dict[str, Any]:
    """Store one batch; a result for every record, in order."""
    try:
        check_rows(records, "records")
        obj, operation, key = _plan(sync_plan)
        options = Options(remove_action=_remove_action())
    except (RpcError, InvalidInput) as exc:
        error = translate(exc)  # logged too: the dashboard shows it with the sync's other calls
        plan = sync_plan if isinstance(sync_plan, dict) else {}
        submit(db.session, ws, refusal("census", _object_name(plan.get("object")),
                                       plan.get("operation"), records, error.message))
        raise error from None
    rows = [_removal(r, obj) for r in records] if operation == "remove" else records
    outcome = submit(db.session, ws, Submission("census", [Batch(obj, operation, rows)],
                                                payload=records, options=options))
    if outcome.error:
        raise database_fault(outcome.error)
    reasons = {r.index: r.reason for r in outcome.rejected}
    return {"record_results": [_record_result(record, key, reasons.get(i))
                               for i, record in enumerate(records)]}


def _record_result(record: Any, key: str, reason: str | None) -> dict[str, Any]:
    identifier = record.get(key) if isinstance(record, dict) else None
    if reason is None:
        return {"identifier": identifier, "success": True}
    return {"identifier": identifier, "success": False, "error_message": reason}


def _plan(sync_plan: Any) -> tuple[str, str, str]:
    """(object, the engine's operation, identifier field) of a sync plan."""
    if not isinstance(sync_plan, dict):
        raise InvalidInput("sync_plan: expected an object")
    plan = sync_plan
    obj = _object(plan.get("object"))
    operation = plan.get("operation")
    allowed = BATCH_OPERATIONS[obj]
    if not isinstance(operation, str) or operation not in allowed:
        raise InvalidInput(f"sync_plan.operation: {obj} batches may be "
                           f"{', '.join(allowed)}; got {fields.describe(operation)}")
    return obj, allowed[operation], _identifier(plan.get("schema"), obj)


def _remove_action() -> str:
    """What a `delete` batch does to accounts and users: the connection URL may say
    `remove_action=delete`; archiving (restored when the record comes back) is the default."""
    action = request.args.get("remove_action", "archive")
    if action not in REMOVE_ACTIONS:
        raise InvalidInput(f"remove_action (in the URL): expected archive or delete; got "
                           f"{fields.describe(action)}")
    return action


def _removal(record: Any, obj: str) -> Any:
    """Only the ID of a record to remove, so its other values cannot reject the removal."""
    if not isinstance(record, dict):
        return record  # the engine rejects it with a reason
    key = ID_FIELD[obj]
    return {key: record[key]} if key in record else {}


def _identifier(schema: Any, obj: str) -> str:
    """The field Census matches records on (the schema's active identifier)."""
    if isinstance(schema, dict):
        for name, entry in schema.items():
            if isinstance(entry, dict) and entry.get("active_identifier") is True:
                field = entry.get("field")
                api_name = field.get("field_api_name") if isinstance(field, dict) else None
                return api_name if isinstance(api_name, str) else name
    return ID_FIELD[obj]


def _object(value: Any) -> str:
    """An object API name, sent bare or as Census's {"object_api_name": ...}."""
    return sc.object_name(_object_name(value))


def _object_name(value: Any) -> Any:
    return value.get("object_api_name") if isinstance(value, dict) else value
