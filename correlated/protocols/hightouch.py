"""Hightouch Custom Destination: `POST /hightouch/rpc`, JSON-RPC 2.0 with named params.

Configuration methods describe Account, User and Event from the workspace's field catalog;
add/change/remove map the rows into a Submission for the engine, then report the rows it did not
store as `rejectedRows`. A database fault is a JSON-RPC Internal Error (-32603), so Hightouch
fails the batch and sends it again instead of recording its rows as bad data.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app

from ..auth import require_key
from ..errors import InvalidInput
from ..extensions import db
from ..ingest.contract import Batch, Submission, refusal
from ..ingest.engine import submit
from ..models import Workspace
from ..vocabulary import MODES
from . import sync_config as sc
from .body import current_workspace
from .hightouch_config import DEFAULT_BATCH_SIZE, SyncConfig, check_mode, options_form
from .jsonrpc import Dispatcher, RpcError, check_rows, database_fault, translate

bp = Blueprint("hightouch", __name__)
rpc = Dispatcher(recover=lambda: db.session.rollback())

HIGHTOUCH_TYPES = {"STRING", "ENUM", "NUMBER", "BOOLEAN", "DATE", "DATETIME", "EMAIL", "OBJECT",
                   "ARRAY", "REFERENCE", "UNKNOWN"}


@bp.post("/hightouch/rpc")
@require_key()
def endpoint() -> Response:
    return rpc.respond(current_workspace())


def read_config(ws: Workspace, configuration: Any) -> SyncConfig:
    return SyncConfig.read(db.session, ws, configuration, _row_limit())


def _row_limit() -> int:
    return current_app.config["MAX_ROWS_PER_REQUEST"]


# --- sync configuration -----------------------------------------------------------------------

@rpc.method
def list_objects(ws: Workspace) -> dict[str, Any]:
    """Account, User and Event."""
    return {"objects": [{"id": key, "label": label, "description": text}
                        for key, (label, text) in sc.OBJECTS.items()]}


@rpc.method
def list_modes(ws: Workspace, object: Any) -> dict[str, Any]:
    """Upsert and update for accounts and users; insert for events."""
    obj = sc.object_name(object)
    return {"modes": [{"id": mode, "label": sc.MODE_TEXT[mode][0],
                       "description": sc.MODE_TEXT[mode][1]} for mode in MODES[obj]]}


@rpc.method
def list_fields(ws: Workspace, object: Any, mode: Any = None) -> dict[str, Any]:
    """The workspace's default and custom fields of the object."""
    obj = sc.object_name(object)
    required = set(sc.fields.required_fields(obj, check_mode(obj, mode)))
    return {"fields": [_field(obj, f, required) for f in sc.catalog(db.session, ws.id, obj)]}


def _field(obj: str, f: Any, required: set[str]) -> dict[str, Any]:
    described = {"id": f.key, "label": f.label, "type": _type(obj, f),
                 "identifier": f.key in sc.IDENTIFIERS[obj], "required": f.key in required}
    if f.key in sc.DESCRIPTIONS:
        described["description"] = sc.DESCRIPTIONS[f.key]
    elif not f.is_default:
        described["description"] = "Custom field."
    return described


def _type(obj: str, f: Any) -> str:
    if sc.is_reference(obj, f.key):
        return "REFERENCE"
    return f.type if f.type in HIGHTOUCH_TYPES else "UNKNOWN"


@rpc.method
def list_options(ws: Workspace, object: Any, mode: Any = None) -> dict[str, Any]:
    """A react-jsonschema-form for the sync's own settings."""
    obj = sc.object_name(object)
    return {"options": options_form(ws, obj, check_mode(obj, mode), _row_limit())}


@rpc.method
def validate(ws: Workspace, configuration: Any) -> dict[str, Any]:
    """Plain-language problems with a sync configuration; an empty list when it can be saved."""
    return {"errors": read_config(ws, configuration).errors}


@rpc.method
def behavior(ws: Workspace, configuration: Any = None) -> dict[str, Any]:
    """Batch size and which operations Hightouch should send for this object and mode.

    The spec's call has no body: then the sync is unknown, so every operation some sync uses is
    asked for, and each add/change/remove applies the configuration it comes with (rows of an
    operation that configuration does not allow are rejected with the reason, nothing changes).
    """
    if configuration is None:
        return {"batchSize": DEFAULT_BATCH_SIZE, "skipInitialRun": False,
                "operations": {"add": True, "change": True, "remove": True}}
    config = read_config(ws, configuration).usable()
    return {"batchSize": config.batch_size, "operations": config.operations(),
            "skipInitialRun": False}


# --- sync execution ---------------------------------------------------------------------------

@rpc.method
def add(ws: Workspace, idColumn: Any, configuration: Any, rows: Any) -> dict[str, Any]:
    """Rows new in the source since the last run."""
    return _sync(ws, "add", idColumn, configuration, rows)


@rpc.method
def change(ws: Workspace, idColumn: Any, configuration: Any, rows: Any) -> dict[str, Any]:
    """Rows changed in the source since the last run."""
    return _sync(ws, "change", idColumn, configuration, rows)


@rpc.method
def remove(ws: Workspace, idColumn: Any, configuration: Any, rows: Any) -> dict[str, Any]:
    """Rows gone from the source since the last run: archived or deleted, as configured."""
    return _sync(ws, "remove", idColumn, configuration, rows)


def _sync(ws: Workspace, method: str, id_column: Any, configuration: Any,
          rows: Any) -> dict[str, Any]:
    target = configuration if isinstance(configuration, dict) else {}
    operation = "remove" if method == "remove" else target.get("mode")
    try:
        config = _checked(ws, id_column, configuration, rows)
    except (RpcError, InvalidInput) as exc:
        error = translate(exc)  # logged too: the dashboard shows it with the sync's other calls
        submit(db.session, ws, refusal("hightouch", target.get("object"), operation, rows,
                                       error.message))
        raise error from None
    operation = "remove" if method == "remove" else config.mode
    refused = config.not_allowed(method)
    if refused is not None:  # what `behavior` answers for this configuration, enforced
        submit(db.session, ws, refusal("hightouch", config.object, operation, rows, refused))
        return {"rejectedRows": [{"id": _row_id(row, id_column), "reason": refused}
                                 for row in rows]}
    mapped = [sc.map_row(row, config.mappings_for(operation)) for row in rows]
    outcome = submit(db.session, ws, Submission(
        "hightouch", [Batch(config.object, operation, mapped)], payload=rows,
        options=config.options()))
    if outcome.error:
        raise database_fault(outcome.error)
    return {"rejectedRows": [{"id": _row_id(rows[r.index], id_column), "reason": r.reason}
                             for r in outcome.rejected]}


def _checked(ws: Workspace, id_column: Any, configuration: Any, rows: Any) -> SyncConfig:
    check_rows(rows)
    if not isinstance(id_column, str):
        raise InvalidInput("idColumn: expected the name of the primary key column")
    return read_config(ws, configuration).usable()


def _row_id(row: Any, id_column: str) -> Any:
    return row.get(id_column) if isinstance(row, dict) else None
