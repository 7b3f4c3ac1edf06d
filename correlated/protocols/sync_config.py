"""What a sync tool may configure: objects, modes, the field catalog, and column -> field mappings.

Shared by the Hightouch and Census adapters; the ingestion engine still judges every row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..errors import InvalidInput
from ..ingest import fields
from ..ingest.engine import NEST
from ..models import Field
from ..vocabulary import MODES, is_object

OBJECTS = {
    "account": ("Account", "A customer company: one row per account, with its dimensions "
                           "(plan, ARR, seats...)."),
    "user": ("User", "A person at a customer account: one row per user, with their dimensions."),
    "event": ("Event", "Something a user or account did at a point in time (sign-in, report "
                       "created...); events become metrics."),
}
MODE_TEXT = {
    "upsert": ("Upsert", "Creates records that are new in your source and updates the ones that "
                         "change. The usual choice."),
    "update": ("Update", "Only updates records Correlated already has; rows for unknown records "
                         "are rejected, nothing new is created."),
    "insert": ("Insert", "Adds each row as an event. Events are never changed afterwards; a row "
                         "sent twice is stored once."),
}
# Fields a sync may match records on, per object.
IDENTIFIERS = {"account": ("account_id",), "user": ("user_id", "email"), "event": ()}
DESCRIPTIONS = {
    "account_id": "Your stable ID for the account; use the same one in every sync.",
    "name": "The company name shown on dashboards.",
    "user_id": "Your stable ID for the user; use the same one in every sync.",
    "email": "The user's email address.",
    "event": "What happened, e.g. 'Report Created'. Becomes a metric.",
    "timestamp": "When it happened: ISO 8601, your warehouse's rendering (Snowflake, BigQuery, "
                 "Redshift, PostgreSQL) or epoch seconds/milliseconds.",
    "event_id": "A unique ID for the event; without one, identical rows are stored once.",
}


def object_name(value: Any) -> str:
    """`value` if it names an object, else InvalidInput."""
    if not is_object(value):
        raise InvalidInput(f"object: expected one of {', '.join(MODES)}; "
                           f"got {fields.describe(value)}")
    return value


def is_reference(obj: str, key: str) -> bool:
    """An ID that points at another object (a user's account, an event's user or account)."""
    return (obj, key) in {("user", "account_id"), ("event", "account_id"), ("event", "user_id")}


def catalog(session: Session, workspace_id: int, obj: str) -> list[Field]:
    """The object's fields in the order a person expects: core, default, then custom by name
    (hidden ones left out: syncs list what an admin wants mapped)."""
    order = list(fields.CORE[obj]) + [key for key, _l, _t in fields.DEFAULT_DIMENSIONS[obj]]
    found = session.scalars(sa.select(Field).where(Field.workspace_id == workspace_id,
                                                   Field.object == obj,
                                                   Field.hidden.is_(False))).all()
    return sorted(found, key=lambda f: (order.index(f.key) if f.key in order else len(order),
                                        f.key.lower()))


# --- mappings -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mapping:
    """One source column sent to one Correlated field."""

    source: str
    target: str
    kind: str = "field"  # identifier | field | custom


def read_mappings(configuration: dict[str, Any]) -> tuple[list[Mapping], list[str]]:
    """identifierMapping (a list of {from, to} or one {from, to}), mappings and customMappings."""
    errors: list[str] = []
    found: list[Mapping] = []
    for key, kind in (("identifierMapping", "identifier"), ("mappings", "field"),
                      ("customMappings", "custom")):
        entries = configuration.get(key)
        if entries is None:
            continue
        if isinstance(entries, dict):
            entries = [entries]  # Hightouch's own examples send the identifier as one object
        if not isinstance(entries, list):
            errors.append(f"{key}: expected a list of {{from, to}} pairs.")
            continue
        for entry in entries:
            mapping = _mapping(entry, kind)
            if mapping is None:
                errors.append(f"{key}: each mapping needs a source column (\"from\") and a "
                              f"Correlated field (\"to\"); got {_shown(entry)}.")
            else:
                found.append(mapping)
    return found, errors


def _shown(entry: Any) -> str:
    text = json.dumps(entry, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _mapping(entry: Any, kind: str) -> Mapping | None:
    if not isinstance(entry, dict):
        return None
    source, target = entry.get("from"), entry.get("to")
    if isinstance(target, dict):  # some tools send {"to": {"id": ...}}
        target = target.get("id")
    if not (isinstance(source, str) and source and isinstance(target, str) and target.strip()):
        return None
    return Mapping(source, target.strip(), kind)


def canonical(obj: str, target: str) -> str:
    """The field a target lands in: core fields through their aliases, others lower-cased."""
    key = target.lower()
    return fields.alias_map(obj).get(key, key)


def mapping_errors(obj: str, mode: str, mappings: list[Mapping], known: set[str],
                   create_fields: bool, defaults: set[str] = frozenset()) -> list[str]:
    """Plain-language problems: required fields not mapped, unknown fields, a field mapped twice."""
    labels = {key: label for key, (label, _t, _a) in fields.CORE[obj].items()}
    by_field: dict[str, list[str]] = {}
    for mapping in mappings:
        by_field.setdefault(canonical(obj, mapping.target), []).append(mapping.source)
    errors = [f"Map a column to {labels[key]} ({key}): every {obj} needs one."
              for key in fields.required_fields(obj, mode) if key not in by_field and key not in defaults]
    for target, sources in by_field.items():
        if len(sources) > 1:
            listed = ", ".join(repr(s) for s in sources)
            errors.append(f"Columns {listed} map to the same field, {labels.get(target, target)}; "
                          "map only one column to each field.")
    errors += [_unknown(m.target) for m in mappings if not create_fields
               and canonical(obj, m.target).split(NEST)[0] not in known | set(labels)]
    errors += [f"{m.target[:40]}...: a field name may have at most {fields.KEY_MAX} characters."
               for m in mappings if len(m.target) > fields.KEY_MAX]
    return errors


def _unknown(target: str) -> str:
    return (f"{target!r} is not a Correlated field and creating custom fields is turned off; "
            "map it to an existing field or allow custom fields.")


def map_row(row: Any, mappings: list[Mapping]) -> Any:
    """The row as the engine sees it: each mapped column under its field; other columns dropped.

    A column absent from the row is left out (nothing changes); a null is kept (it clears).
    """
    if not isinstance(row, dict):
        return row  # the engine rejects it with a reason
    return {m.target: row[m.source] for m in mappings if m.source in row}
