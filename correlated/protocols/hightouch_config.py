"""A Hightouch sync's configuration, read and checked: what it syncs, how, and its options.

A service: it takes the session, the workspace and the row limit, and refuses a configuration
that cannot be used with InvalidInput listing every problem (the adapter answers Invalid Params).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from ..errors import InvalidInput
from ..ingest import fields
from ..ingest.contract import Options
from ..models import Workspace
from ..vocabulary import MODES, is_object
from . import sync_config as sc

DEFAULT_BATCH_SIZE = 100
REMOVE_ACTIONS = ("archive", "delete")


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
    def read(cls, session: Session, ws: Workspace, configuration: Any,
             row_limit: int) -> SyncConfig:
        """The configuration with `errors` naming every problem found (none: it can be used)."""
        if not isinstance(configuration, dict):
            raise InvalidInput("configuration: expected an object")
        config = cls()
        config._read_target(configuration)
        if config.errors:
            return config
        config._read_options(ws, configuration, row_limit)
        config.mappings, problems = sc.read_mappings(configuration)
        config.errors += problems
        config._check_mappings(session, ws)
        return config

    def _read_target(self, configuration: dict[str, Any]) -> None:
        obj, mode = configuration.get("object"), configuration.get("mode")
        if not is_object(obj):
            self.errors.append(f"Choose what to sync: Account, User or Event (got "
                               f"{fields.describe(obj)}).")
            return
        self.object = obj
        modes = MODES[obj]
        if mode is None and len(modes) == 1:
            mode = modes[0]
        if mode not in modes:
            names = " or ".join(sc.MODE_TEXT[m][0] for m in modes)
            self.errors.append(f"{sc.OBJECTS[obj][0]} syncs can use {names}, not "
                               f"{fields.describe(mode)}.")
            return
        self.mode = mode

    def _read_options(self, ws: Workspace, configuration: dict[str, Any], row_limit: int) -> None:
        create = configuration.get("createFields", True)
        remove_action = configuration.get("removeAction") or "archive"
        event_name = configuration.get("eventName")
        batch_size = configuration.get("batchSize", DEFAULT_BATCH_SIZE)
        # The workspace setting is the admin's policy: a sync may only narrow it (the engine
        # holds the same rule; here it decides which mappings to report).
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
        if _whole_number(batch_size) and 1 <= batch_size <= row_limit:
            self.batch_size = int(batch_size)
        else:
            self.errors.append(f"Batch size: expected a whole number from 1 to {row_limit:,}.")

    def _check_mappings(self, session: Session, ws: Workspace) -> None:
        # The catalog matters only when new fields are refused (the engine reads its own copy).
        known = set() if self.create_fields else \
            set(fields.load_catalog(session, ws.id, self.object))
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
        labels = " or ".join(fields.CORE[self.object][k][0] for k in allowed)
        for m in self.mappings:
            if m.kind == "identifier" and sc.canonical(self.object, m.target) not in allowed:
                self.errors.append(f"Records are matched on {labels}, not {m.target!r}.")

    def _targets(self) -> set[str]:
        return {sc.canonical(self.object, m.target) for m in self.mappings}

    def usable(self) -> SyncConfig:
        """This configuration, or InvalidInput listing what to fix in Hightouch."""
        if self.errors:
            raise InvalidInput("configuration: " + " ".join(self.errors), errors=self.errors)
        return self

    def operations(self) -> dict[str, bool]:
        if self.object == "event":
            return {"add": True, "change": False, "remove": self.delete_removed_events}
        # Update mode never creates nor removes records another sync may own.
        return {"add": True, "change": True, "remove": self.mode == "upsert"}

    def not_allowed(self, method: str) -> str | None:
        """Why this sync's configuration does not allow `method` (add, change or remove), or
        None when it does: the rule `operations` tells Hightouch, held on every call."""
        if self.operations()[method]:
            return None
        if self.object == "event" and method == "change":
            return ("not changed: events are immutable once stored, so a changed row is not "
                    "applied")
        if self.object == "event":
            return ("not removed: this sync keeps events that leave the model; turn on 'Delete "
                    "events that leave the model' to delete them")
        plural = sc.OBJECTS[self.object][0].lower() + "s"
        return (f"not removed: Update syncs never archive or delete {plural} (another sync may "
                f"own them); use an Upsert sync to remove {plural} that leave the model")

    def mappings_for(self, operation: str) -> list[sc.Mapping]:
        """The mappings a call uses; removing reads only the fields a removal needs (the ID),
        so other values cannot reject the row."""
        if operation != "remove":
            return self.mappings
        needed = fields.required_fields(self.object, "remove")
        return [m for m in self.mappings if sc.canonical(self.object, m.target) in needed]

    def options(self) -> Options:
        return Options(create_fields=self.create_fields, remove_action=self.remove_action,
                       default_event_name=self.event_name)


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_mode(obj: str, value: Any) -> str:
    """The mode a configuration method is asked about (the object's first one by default)."""
    if value is None:
        return MODES[obj][0]
    if value not in MODES[obj]:
        raise InvalidInput(f"mode: {obj} syncs support {', '.join(MODES[obj])}; "
                           f"got {fields.describe(value)}")
    return value


def options_form(ws: Workspace, obj: str, mode: str, row_limit: int) -> dict[str, Any]:
    """The sync's own settings as a react-jsonschema-form (schema and uiSchema)."""
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
        "maximum": row_limit, "description": "Rows Hightouch sends in each call."}
    return {"schema": {"type": "object", "properties": properties}, "uiSchema": ui}
