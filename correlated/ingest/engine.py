"""THE write path: every protocol hands rows to `ingest`/`ingest_batches`.

validate and map each row -> collect rejections -> one set-based statement per object and
operation -> one commit -> one ingest-log entry. No Flask imports: callable from anywhere.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Sequence

import orjson
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, scoped_session

from .. import database
from . import fields, writes
from .fields import Invalid
from .log import write_log
from ..models import Workspace

OPERATIONS = {
    "account": ("upsert", "update", "remove"),
    "user": ("upsert", "update", "remove"),
    "event": ("insert", "remove"),
}
ID_FIELD = {"account": "account_id", "user": "user_id", "event": "event_id"}
NEST = "__"
MAX_DEPTH = 32
RETRIES = 4  # for "database is locked", deadlocks and serialization failures
# Called as hook(protocol, results, seconds) after each unit of work (observability's metrics).
RESULT_HOOKS: list[Callable[[str, list["Result"], float], None]] = []


@dataclass
class Options:
    """How a protocol wants its rows treated."""

    protocol: str = "api"
    create_fields: bool | None = None  # None: the workspace's setting
    remove_action: str = "archive"  # accounts/users: "archive" or "delete"
    default_event_name: str | None = None
    default_timestamp: datetime | None = None  # for protocols that document "received time"
    event_needs_user: bool = True  # False: an account ID alone identifies the event's owner
    payload: Any = None  # what to keep as the request's latest payload (None: the rows)
    log: bool = True
    aliases: bool = True  # False: only core fields' own names (envelopes that name them, Segment)


@dataclass
class Batch:
    object: str
    operation: str
    rows: Sequence[Any]


@dataclass
class Rejection:
    index: int
    id: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "reason": self.reason}


@dataclass
class Result:
    object: str
    operation: str
    received: int = 0
    accepted: int = 0
    created: int = 0
    updated: int = 0
    removed: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    error: str | None = None

    @property
    def changed(self) -> int:
        return self.created + self.updated + self.removed

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": self.object, "operation": self.operation, "received": self.received,
            "accepted": self.accepted, "created": self.created, "updated": self.updated,
            "removed": self.removed, "duplicates": self.duplicates,
            "rejected": [r.to_dict() for r in self.rejected],
        }


@dataclass
class Record:
    """A validated row: its core columns and its dimensions/properties."""

    index: int
    id: str
    core: dict[str, Any]
    attrs: dict[str, Any]


class RowError(Exception):
    def __init__(self, reasons: list[str], row_id: str | None = None):
        super().__init__("; ".join(reasons))
        self.reasons = reasons
        self.row_id = row_id


def ingest(session: Session, workspace: Workspace, obj: str, operation: str,
           rows: Sequence[Any], options: Options | None = None) -> Result:
    """Validate and store one batch of rows of one object; commits once."""
    return ingest_batches(session, workspace, [Batch(obj, operation, rows)], options)[0]


def ingest_batches(session: Session, workspace: Workspace, batches: Sequence[Batch],
                   options: Options | None = None) -> list[Result]:
    """Several batches in one unit of work (accounts, then users, then events); commits once."""
    options = options or Options()
    started = time.perf_counter()
    if isinstance(session, scoped_session):
        session = session()
    for batch in batches:
        if batch.operation not in OPERATIONS.get(batch.object, ()):
            raise ValueError(f"unsupported {batch.object!r} operation {batch.operation!r}")
    workspace_id = workspace.id
    create_fields = workspace.allow_custom_fields if options.create_fields is None \
        else options.create_fields
    ordered = sorted(batches, key=lambda b: list(OPERATIONS).index(b.object))
    if session.in_transaction():
        # Ingest is a unit of work of its own. Ending the caller's (read) transaction lets it
        # begin a write transaction (BEGIN IMMEDIATE on SQLite) rather than upgrade a read one,
        # which SQLite refuses whenever another writer committed in between.
        session.commit()
    error = None
    for attempt in range(RETRIES):
        try:
            results = _run(session, workspace_id, ordered, options, create_fields)
            if options.log:  # in the same transaction: one commit per unit of work
                write_log(session, workspace_id, options.protocol, results,
                          _payload(batches, options))
            session.commit()
            break
        except DBAPIError as exc:
            session.rollback()
            if attempt + 1 < RETRIES and _retryable(exc):
                time.sleep(0.05 * 2**attempt)
                continue
            error = f"database error: {type(exc.orig).__name__}: {str(exc.orig).splitlines()[0]}"
            results = [_failed(b, error) for b in ordered]
            break
    if error is not None and options.log:  # the batch was rolled back; the log keeps why
        write_log(session, workspace_id, options.protocol, results, _payload(batches, options), error)
        session.commit()
    for hook in RESULT_HOOKS:
        hook(options.protocol, results, time.perf_counter() - started)
    by_batch = {id(b): r for b, r in zip(ordered, results)}
    return [by_batch[id(b)] for b in batches]


def _retryable(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return isinstance(exc, OperationalError) and (
        "database is locked" in text or "deadlock detected" in text
        or "could not serialize" in text or "database table is locked" in text
    )


def _failed(batch: Batch, error: str) -> Result:
    result = Result(batch.object, batch.operation, received=len(batch.rows))
    result.rejected = [Rejection(i, None, error) for i in range(len(batch.rows))]
    result.error = error
    return result


def _payload(batches: Sequence[Batch], options: Options) -> Any:
    if options.payload is not None:
        return options.payload
    if len(batches) == 1:
        return list(batches[0].rows)
    return {b.object: list(b.rows) for b in batches}


def _run(session: Session, workspace_id: int, batches: Sequence[Batch], options: Options,
         create_fields: bool) -> list[Result]:
    if not session.in_transaction():
        session.connection(execution_options=database.WRITE_TRANSACTION)
    results = []
    for batch in batches:
        result = Result(batch.object, batch.operation, received=len(batch.rows))
        catalog = fields.load_catalog(session, workspace_id, batch.object)
        new_fields: dict[str, str] = {}
        records = _validate(batch, catalog, new_fields, create_fields, options, result)
        if new_fields:
            writes.add_fields(session, workspace_id, batch.object, new_fields)
        writes.apply(session, workspace_id, batch.object, batch.operation, records, options, result)
        results.append(result)
    return results


# --- validation -----------------------------------------------------------------------------

def _validate(batch: Batch, catalog: dict, new_fields: dict[str, str], create_fields: bool,
              options: Options, result: Result) -> list[Record]:
    """Records of the valid rows (same ID twice: merged in order, so the last one wins)."""
    aliases = ColumnNames(fields.alias_map(batch.object) if options.aliases
                          else {key: key for key in fields.CORE[batch.object]})
    catalog = {k: (f.key, f.type) for k, f in catalog.items()}  # plain tuples: read per value
    by_id: dict[str, Record] = {}
    for index, row in enumerate(batch.rows):
        try:
            record = _record(index, row, batch, aliases, catalog, new_fields, create_fields,
                             options)
        except RowError as exc:
            result.rejected.append(Rejection(index, exc.row_id, str(exc)))
            continue
        result.accepted += 1
        earlier = by_id.get(record.id)
        if earlier is None:
            by_id[record.id] = record
        elif batch.object == "event":
            result.duplicates += 1  # events are immutable: the first one stands
        else:
            earlier.core.update(record.core)
            earlier.attrs = merge_patch(earlier.attrs, record.attrs)
    return sorted(by_id.values(), key=lambda r: r.id)  # one lock order for every writer


def _record(index: int, row: Any, batch: Batch, aliases: dict[str, str], catalog: dict,
            new_fields: dict[str, str], create_fields: bool, options: Options) -> Record:
    if not isinstance(row, dict):
        raise RowError([f"row: expected a JSON object, got {fields.describe(row)}"])
    obj, operation = batch.object, batch.operation
    unstorable = next((key for key in row if check_json(key)), None)
    if unstorable is not None:  # before nesting: no reason may carry the key itself
        raise RowError([f"{ascii(unstorable)[1:-1]}: column name {check_json(unstorable)}"])
    core, rest, reasons = _split(nest(row), aliases)
    _defaults(obj, core, options)
    row_id = _core_values(obj, operation, core, reasons)
    if operation != "remove":
        _required(obj, operation, core, reasons, options)
    attrs = {} if operation == "remove" else _attributes(rest, catalog, new_fields,
                                                         create_fields, reasons)
    if reasons:
        raise RowError(reasons, row_id)
    if obj == "event" and row_id is None:
        if operation == "remove":
            raise RowError(["event_id: required to remove an event"])
        row_id = core["event_id"] = derived_event_id(core, attrs)
    return Record(index, row_id, core, attrs)


def nest(row: dict[str, Any]) -> dict[str, Any]:
    """`a__b__c: 1` -> `{"a": {"b": {"c": 1}}}` (a plain key and a nested one may not collide)."""
    if not any(NEST in key for key in row):
        return row
    out: dict[str, Any] = {}
    for key, value in row.items():
        parts = [p for p in key.split(NEST)] if NEST in key else [key]
        if any(p == "" for p in parts):
            raise RowError([f"{key}: empty segment in a '__' nested name"])
        target = out
        for part in parts[:-1]:
            node = target.setdefault(part, {})
            if not isinstance(node, dict):
                raise RowError([f"{key}: conflicts with the value of {part!r}"])
            target = node
        if parts[-1] in target and isinstance(target[parts[-1]], dict) != isinstance(value, dict):
            raise RowError([f"{key}: conflicts with another column nesting into {parts[-1]!r}"])
        if isinstance(value, dict) and isinstance(target.get(parts[-1]), dict):
            problem = check_json(value)  # merging recurses as deep as the value goes
            if problem:
                raise RowError([f"{key}: {problem}"])
            target[parts[-1]] = merge_patch(target[parts[-1]], value)
        else:
            target[parts[-1]] = value
    return out


class ColumnNames(dict):
    """Column name -> core field (None: not a core field), each name looked up once a batch."""

    def __init__(self, aliases: dict[str, str]):
        super().__init__()
        self.aliases = aliases

    def __missing__(self, key: str) -> str | None:
        self[key] = target = self.aliases.get(key.strip().lower())
        return target


def _split(row: dict[str, Any], aliases: dict[str, str]) -> tuple[dict, dict, list[str]]:
    core: dict[str, Any] = {}
    source: dict[str, str] = {}
    rest: dict[str, Any] = {}
    reasons: list[str] = []
    for key, value in row.items():
        if not isinstance(key, str) or not key.strip():
            reasons.append("column name: must not be empty")
            continue
        target = aliases[key]
        if target is None:
            rest[key] = value
        elif target in core and value is not None and core[target] is not None:
            reasons.append(f"{key}: maps to {target}, which {source[target]} already gives")
        elif target not in core or core[target] is None:
            core[target] = value
            source[target] = key
    return core, rest, reasons


def _defaults(obj: str, core: dict[str, Any], options: Options) -> None:
    if obj != "event":
        return
    if core.get("event") in (None, "") and options.default_event_name:
        core["event"] = options.default_event_name
    if core.get("timestamp") in (None, "") and options.default_timestamp is not None:
        core["timestamp"] = options.default_timestamp


def _core_values(obj: str, operation: str, core: dict[str, Any], reasons: list[str]) -> str | None:
    """Type-check the core columns in place; returns the row's ID when it has a valid one."""
    for key in list(core):
        value = core[key]
        if value is None or value == "":
            core[key] = None
            continue
        try:
            core[key] = _core_value(key, value)
        except Invalid as exc:
            reasons.append(f"{key}: {exc}")
            core[key] = None
    row_id = core.get(ID_FIELD[obj])
    named = any(r.startswith(f"{ID_FIELD[obj]}:") for r in reasons)  # given, but not valid
    if row_id is None and obj != "event" and not named:
        reasons.insert(0, f"{ID_FIELD[obj]}: required")
    return row_id


def _core_value(key: str, value: Any) -> Any:
    typed = _core_typed(key, value)
    problem = check_json(typed) if isinstance(typed, str) else None
    if problem:  # NUL and lone surrogates: neither database stores them in a text column
        raise Invalid(problem)
    return typed


def _core_typed(key: str, value: Any) -> Any:
    if key in ("account_id", "user_id", "event_id"):
        return fields.to_identifier(value)
    if key == "timestamp":
        return value if isinstance(value, datetime) else fields.parse_timestamp(value)
    if key == "email":
        return fields.coerce(value, "EMAIL")
    text = fields.coerce(value, "STRING")
    limit = 255 if key == "event" else 512  # the events.event column is VARCHAR(255)
    if len(text) > limit:
        raise Invalid(f"longer than {limit} characters")
    return text


def _required(obj: str, operation: str, core: dict[str, Any], reasons: list[str],
              options: Options) -> None:
    needed = fields.REQUIRED[obj] if operation in ("upsert", "insert") else ()
    for key in needed:
        if core.get(key) is not None:
            continue
        if key == "user_id" and not options.event_needs_user and core.get("account_id"):
            continue
        if any(r.startswith(f"{key}:") for r in reasons):
            continue
        hint = " (or account_id)" if key == "user_id" and not options.event_needs_user else ""
        reasons.append(f"{key}{hint}: required")


def _attributes(rest: dict[str, Any], catalog: dict, new_fields: dict[str, str],
                create_fields: bool, reasons: list[str]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for key, value in rest.items():
        problem = check_json(value)
        if problem:
            reasons.append(f"{key}: {problem}")
            continue
        known = catalog.get(key.lower())
        if known is not None:
            name, typ = known
        elif key.lower() in new_fields:
            name, typ = key.lower(), new_fields[key.lower()]
        elif value is None:
            continue  # nothing to clear on a field that does not exist yet
        elif not create_fields:
            reasons.append(f"{key}: unknown field (creating custom fields is turned off)")
            continue
        elif len(key) > fields.KEY_MAX:
            reasons.append(f"{key[:40]}...: field name longer than {fields.KEY_MAX} characters")
            continue
        else:
            name, typ = key, fields.infer_type(value)
            new_fields[key.lower()] = typ
        try:
            attrs[name] = fields.coerce(value, typ)
        except Invalid as exc:
            reasons.append(f"{key}: {exc} (field type {typ})")
    return attrs


def check_json(value: Any, depth: int = 0) -> str | None:
    """What makes a value unstorable as JSON on both databases, or None."""
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains invalid unicode (a lone surrogate)"
        return None
    if isinstance(value, float):
        return None if value == value and value not in (float("inf"), float("-inf")) \
            else "NaN and Infinity are not valid JSON numbers"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if -fields.INT64 <= value < fields.INT64 else "number beyond 64-bit range"
    if depth >= MAX_DEPTH and isinstance(value, (dict, list)):
        return f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, dict):
        return next(filter(None, (check_json(v, depth + 1) or _key_problem(k)
                                  for k, v in value.items())), None)
    if isinstance(value, list):
        return next(filter(None, (check_json(v, depth + 1) for v in value)), None)
    return f"unsupported value {fields.describe(value)}"


def _key_problem(key: Any) -> str | None:
    return check_json(key) if isinstance(key, str) else "object keys must be strings"


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 in Python, the same rule the SQL applies."""
    out = dict(target)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_patch(out[key], value)
        else:
            out[key] = value
    return out


def derived_event_id(core: dict[str, Any], attrs: dict[str, Any]) -> str:
    """A content hash, so an event sent again without an event_id is still stored once."""
    material = [core.get("event"), core.get("user_id"), core.get("account_id"),
                core["timestamp"].isoformat() if core.get("timestamp") else None, attrs]
    digest = hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS,
                                         default=str)).hexdigest()
    return "h_" + digest[:40]
