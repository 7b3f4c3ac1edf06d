"""Hightouch Custom Destination: `POST /hightouch/rpc`, JSON-RPC 2.0 with named params.

Configuration methods describe Account, User and Event from the workspace's field catalog;
add/change/remove map the rows and hand them to the ingestion engine, then report the rows it
did not store as `rejectedRows`. A database fault is a JSON-RPC Internal Error (-32603), so
Hightouch fails the batch and sends it again instead of recording its rows as bad data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app

from ..ingest import fields as catalog_fields
from . import sync_config as sc
from ..auth import require_key
from ..extensions import db
from ..ingest.engine import ID_FIELD, Options, ingest
from ..models import Workspace
from .body import current_workspace
from .jsonrpc import (Dispatcher, RpcError, check_rows, database_fault, expect_object,
                  invalid_params)

bp = Blueprint("hightouch", __name__)
rpc = Dispatcher()

DEFAULT_BATCH_SIZE = 100
REMOVE_ACTIONS = ("archive", "delete")
HIGHTOUCH_TYPES = {"STRING", "ENUM", "NUMBER", "BOOLEAN", "DATE", "DATETIME", "EMAIL", "OBJECT",
                   "ARRAY", "REFERENCE", "UNKNOWN"}


@bp.post("/hightouch/rpc")
@require_key()
def endpoint() -> Response:
    return rpc.respond(current_workspace())


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
                       "description": sc.MODE_TEXT[mode][1]} for mode in sc.MODES[obj]]}


@rpc.method
def list_fields(ws: Workspace, object: Any, mode: Any = None) -> dict[str, Any]:
    """The workspace's default and custom fields of the object."""
    obj = sc.object_name(object)
    mode = _mode(obj, mode)
    required = set(sc.required_fields(obj, mode))
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
    mode = _mode(obj, mode)
    properties: dict[str, Any] = {"createFields": {
        "type": "boolean", "title": "Create custom fields", "default": ws.allow_custom_fields,
        "description": "When a custom mapping names a field Correlated does not have yet, create "
                       "it (its type comes from the first value). Turn off to reject such rows.",
    }}
    ui: dict[str, Any] = {}
    if obj == "event":
        properties["eventName"] = {
            "type": "string", "title": "Event name",
            "description": "Used for every row when no column is mapped to Event Name, "
                           "e.g. 'Report Created'."}
        properties["deleteRemovedEvents"] = {
            "type": "boolean", "title": "Delete events that leave the model", "default": False,
            "description": "Off: events stay when their rows leave your query (for example a "
                           "rolling time window). On: they are deleted; needs Event ID mapped."}
    elif mode == "upsert":
        properties["removeAction"] = {
            "type": "string", "title": f"When a row leaves the model, the {obj}...",
            "enum": list(REMOVE_ACTIONS), "default": "archive",
            "enumNames": ["is archived: hidden from dashboards, kept for history, restored "
                          "if it comes back", "is deleted permanently"]}
        ui["removeAction"] = {"ui:widget": "radio"}
    properties["batchSize"] = {
        "type": "integer", "title": "Batch size", "default": DEFAULT_BATCH_SIZE, "minimum": 1,
        "maximum": _row_limit(), "description": "Rows Hightouch sends in each call."}
    return {"options": {"schema": {"type": "object", "properties": properties}, "uiSchema": ui}}


@rpc.method
def validate(ws: Workspace, configuration: Any) -> dict[str, Any]:
    """Plain-language problems with a sync configuration; an empty list when it can be saved."""
    return {"errors": SyncConfig.read(ws, configuration).errors}


@rpc.method
def behavior(ws: Workspace, configuration: Any = None) -> dict[str, Any]:
    """Batch size and which operations Hightouch should send for this object and mode."""
    if configuration is None:
        return {"batchSize": DEFAULT_BATCH_SIZE, "skipInitialRun": False,
                "operations": {"add": True, "change": True, "remove": True}}
    config = SyncConfig.read(ws, configuration).usable()
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
    try:
        config = _checked(ws, id_column, configuration, rows)
    except RpcError as exc:
        target = configuration if isinstance(configuration, dict) else {}
        operation = "remove" if method == "remove" else target.get("mode")
        sc.log_refusal(db.session, ws, "hightouch", target.get("object"), operation, rows,
                       exc.message)
        raise
    operation = "remove" if method == "remove" else config.mode
    mappings = config.id_mappings() if operation == "remove" else config.mappings
    result = ingest(db.session, ws, config.object, operation,
                    [sc.map_row(row, mappings) for row in rows], config.options(rows))
    if result.error:
        raise database_fault(result.error)
    return {"rejectedRows": [{"id": _row_id(rows[r.index], id_column), "reason": r.reason}
                             for r in sorted(result.rejected, key=lambda r: r.index)]}


def _checked(ws: Workspace, id_column: Any, configuration: Any, rows: Any) -> SyncConfig:
    check_rows(rows)
    if not isinstance(id_column, str):
        raise invalid_params("idColumn: expected the name of the primary key column")
    return SyncConfig.read(ws, configuration).usable()


def _row_id(row: Any, id_column: str) -> Any:
    return row.get(id_column) if isinstance(row, dict) else None


# --- the configuration ------------------------------------------------------------------------

@dataclass
class SyncConfig:
    """A Hightouch sync configuration, read and checked."""

    object: str | None = None
    mode: str | None = None
    mappings: list[sc.Mapping] = field(default_factory=list)
    create_fields: bool = True
    remove_action: str = "archive"
    event_name: str | None = None
    delete_removed_events: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    errors: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, ws: Workspace, configuration: Any) -> SyncConfig:
        configuration = expect_object(configuration, "configuration")
        config = cls()
        config._read_target(configuration)
        if config.errors:
            return config
        config._read_options(ws, configuration)
        config.mappings, problems = sc.read_mappings(configuration)
        config.errors += problems
        config._check_mappings(ws)
        return config

    def _read_target(self, configuration: dict[str, Any]) -> None:
        obj, mode = configuration.get("object"), configuration.get("mode")
        if not sc.is_object(obj):
            self.errors.append(f"Choose what to sync: Account, User or Event (got "
                               f"{catalog_fields.describe(obj)}).")
            return
        self.object = obj
        modes = sc.MODES[obj]
        if mode is None and len(modes) == 1:
            mode = modes[0]
        if mode not in modes:
            names = " or ".join(sc.MODE_TEXT[m][0] for m in modes)
            self.errors.append(f"{sc.OBJECTS[obj][0]} syncs can use {names}, not "
                               f"{catalog_fields.describe(mode)}.")
            return
        self.mode = mode

    def _read_options(self, ws: Workspace, configuration: dict[str, Any]) -> None:
        create = configuration.get("createFields", True)
        remove_action = configuration.get("removeAction") or "archive"
        event_name = configuration.get("eventName")
        batch_size = configuration.get("batchSize", DEFAULT_BATCH_SIZE)
        # The workspace setting is the admin's policy: a sync may only narrow it.
        self.create_fields = bool(create) and ws.allow_custom_fields
        self.delete_removed_events = bool(configuration.get("deleteRemovedEvents", False))
        if remove_action in REMOVE_ACTIONS:
            self.remove_action = remove_action
        else:
            self.errors.append("When a row leaves the model: choose archive or delete.")
        if isinstance(event_name, str) and event_name.strip():
            self.event_name = event_name.strip()
        elif event_name not in (None, ""):
            self.errors.append("Event name: expected text.")
        if _batch_size_ok(batch_size):
            self.batch_size = int(batch_size)
        else:
            self.errors.append(f"Batch size: expected a whole number from 1 to {_row_limit():,}.")

    def _check_mappings(self, ws: Workspace) -> None:
        known = set(catalog_fields.load_catalog(db.session, ws.id, self.object))
        defaults = {"event"} if self.event_name else set()
        self.errors += sc.mapping_errors(self.object, self.mode, self.mappings, known,
                                         self.create_fields, defaults)
        if self.object in ("account", "user"):
            self._check_identifier()
        if self.delete_removed_events and "event_id" not in self._targets():
            self.errors.append("To delete events that leave the model, map a column to "
                               "Event ID (event_id).")

    def _check_identifier(self) -> None:
        allowed = sc.IDENTIFIERS[self.object]
        labels = " or ".join(catalog_fields.CORE[self.object][k][0] for k in allowed)
        for m in self.mappings:
            if m.kind == "identifier" and sc.canonical(self.object, m.target) not in allowed:
                self.errors.append(f"Records are matched on {labels}, not {m.target!r}.")

    def _targets(self) -> set[str]:
        return {sc.canonical(self.object, m.target) for m in self.mappings}

    def usable(self) -> SyncConfig:
        """This configuration, or Invalid Params listing what to fix in Hightouch."""
        if self.errors:
            raise invalid_params("configuration: " + " ".join(self.errors), errors=self.errors)
        return self

    def operations(self) -> dict[str, bool]:
        if self.object == "event":
            return {"add": True, "change": False, "remove": self.delete_removed_events}
        # Update mode never creates nor removes records another sync may own.
        return {"add": True, "change": True, "remove": self.mode == "upsert"}

    def id_mappings(self) -> list[sc.Mapping]:
        """For remove: only the column giving the record's ID, so other values cannot reject it."""
        key = ID_FIELD[self.object]
        return [m for m in self.mappings if sc.canonical(self.object, m.target) == key]

    def options(self, rows: list[Any]) -> Options:
        return Options(protocol="hightouch", create_fields=self.create_fields,
                       remove_action=self.remove_action, default_event_name=self.event_name,
                       payload=rows)


def _mode(obj: str, value: Any) -> str:
    if value is None:
        return sc.MODES[obj][0]
    if value not in sc.MODES[obj]:
        raise invalid_params(f"mode: {obj} syncs support {', '.join(sc.MODES[obj])}; "
                             f"got {catalog_fields.describe(value)}")
    return value


def _batch_size_ok(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)
            and 1 <= value <= _row_limit())


def _row_limit() -> int:
    return current_app.config["MAX_ROWS_PER_REQUEST"]
