"""THE write path: every protocol hands its request to `submit` as a Submission.

validate and map each row -> collect rejections -> one set-based statement per object and
operation -> the request's one ingest-log entry -> one commit. No Flask imports.
"""
from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence

import orjson
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, scoped_session

from .. import config, database
from ..models import Workspace
from ..vocabulary import EVENT_NAME_MAX, ID_FIELD, OBJECTS, OPERATIONS, TEXT_MAX
from . import catalog as field_catalog, fields, writes
from .contract import (Batch, Options, Outcome, Record, Rejection, Result, RowError,
                       Submission)
from .fields import Invalid
from .log import write_log

__all__ = ["Batch", "Options", "Outcome", "Rejection", "Result", "Submission", "ingest",
           "ingest_batches", "submit"]

NEST = "__"
MAX_DEPTH = 32
RETRIES = 4  # for "database is locked", deadlocks and serialization failures
# Called as hook(protocol, results, seconds) after each unit of work (observability's metrics).
RESULT_HOOKS: list[Callable[[str | None, list[Result], float], None]] = []


def ingest(session: Session, workspace: Workspace, obj: str, operation: str,
           rows: Sequence[Any], options: Options | None = None,
           protocol: str | None = "api") -> Result:
    """Validate and store one batch of rows of one object; commits once."""
    return ingest_batches(session, workspace, [Batch(obj, operation, rows)], options,
                          protocol)[0]


def ingest_batches(session: Session, workspace: Workspace, batches: Sequence[Batch],
                   options: Options | None = None, protocol: str | None = "api") -> list[Result]:
    """Several batches in one unit of work (accounts, then users, then events); commits once."""
    submission = Submission(protocol, batches, options=options or Options())
    return submit(session, workspace, submission).results


def submit(session: Session, workspace: Workspace, submission: Submission) -> Outcome:
    """Validate, store and log one request in one transaction; a database error stores none
    of it and the log entry (committed on its own) says why."""
    started = time.perf_counter()
    if isinstance(session, scoped_session):
        session = session()
    for batch in submission.batches:
        if batch.rows and batch.operation not in OPERATIONS.get(batch.object, ()):
            raise ValueError(f"unsupported {batch.object!r} operation {batch.operation!r}")
    workspace_id = workspace.id
    # The workspace setting is the admin's policy: a request may only narrow it.
    create_fields = workspace.allow_custom_fields and submission.options.create_fields is not False
    _end_read(session)
    for attempt in range(RETRIES):
        try:
            outcome = _outcome(submission, _run(session, workspace_id, submission, create_fields))
            if submission.options.all_or_nothing and outcome.rejected:
                _withhold(session, outcome)
            _log(session, workspace_id, submission, outcome)  # in the same transaction
            session.commit()
            break
        except DBAPIError as exc:
            session.rollback()
            if attempt + 1 < RETRIES and _retryable(exc):
                time.sleep(0.05 * 2**attempt)
                continue
            outcome = _failure(session, workspace_id, submission, exc)
            break
        except BaseException:
            session.rollback()  # a bug or an interrupt: none of the request may stay behind
            raise
    for hook in RESULT_HOOKS:
        hook(submission.protocol, outcome.results, time.perf_counter() - started)
    return outcome


def _withhold(session: Session, outcome: Outcome) -> None:
    """All or nothing: a rejected row undoes the request's writes, so the sender can retry it
    whole; the log entry, written next, says why."""
    session.rollback()
    session.connection(execution_options=database.WRITE_TRANSACTION)
    for result in outcome.results:
        result.accepted = result.created = result.updated = result.removed = 0
        result.duplicates = 0
    outcome.refusal = (f"all or nothing: {len(outcome.rejected):,} of {outcome.received:,} rows "
                       "rejected, so none was stored")


def _failure(session: Session, workspace_id: int, submission: Submission,
             exc: DBAPIError) -> Outcome:
    """Every row rejected with the database's reason; the log entry, alone, keeps why."""
    error = f"database error: {type(exc.orig).__name__}: {str(exc.orig).splitlines()[0]}"
    outcome = _outcome(submission, [_failed(b, error) for b in submission.batches], error)
    try:
        _log(session, workspace_id, submission, outcome)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return outcome


def _end_read(session: Session) -> None:
    """On SQLite, end the caller's (read) transaction, so the unit of work begins a write one
    (BEGIN IMMEDIATE) rather than upgrade a read one, which SQLite refuses whenever another
    writer committed in between. PostgreSQL carries on in the same transaction."""
    if session.in_transaction() and database.is_sqlite(session.get_bind()):
        session.commit()


def _retryable(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return isinstance(exc, OperationalError) and (
        "database is locked" in text or "deadlock detected" in text
        or "could not serialize" in text or "database table is locked" in text
    )


def _failed(batch: Batch, error: str) -> Result:
    result = Result(batch.object, batch.operation, received=len(batch.rows))
    result.rejected = [Rejection(batch.position(i), None, error) for i in range(len(batch.rows))]
    result.error = error
    return result


def _outcome(submission: Submission, results: list[Result], error: str | None = None) -> Outcome:
    """The results with the adapter's refusals added, every reason in the sender's terms."""
    explain = submission.explain
    for batch, result in zip(submission.batches, results):
        if explain is not None:
            for rejection in result.rejected:
                rejection.reason = explain(batch, rejection)
        result.received += len(batch.refused)
        result.rejected = sorted(result.rejected + batch.refused, key=lambda r: r.index)
    rejected = sorted([r for result in results for r in result.rejected] + submission.refused,
                      key=lambda r: r.index)
    return Outcome(results, rejected, submission.received, error)


def _log(session: Session, workspace_id: int, submission: Submission, outcome: Outcome) -> None:
    if submission.protocol is not None:
        write_log(session, workspace_id, submission.protocol, outcome,
                  submission.kept_payload(),
                  outcome.error or submission.refusal or outcome.refusal)


def _run(session: Session, workspace_id: int, submission: Submission,
         create_fields: bool) -> list[Result]:
    """Each batch validated and written, accounts first, then users, then events."""
    if not session.in_transaction():
        session.connection(execution_options=database.WRITE_TRANSACTION)
    batches = submission.batches
    results = [Result(b.object, b.operation, received=len(b.rows)) for b in batches]
    for i in sorted(range(len(batches)), key=lambda i: OBJECTS.index(batches[i].object)):
        if batches[i].rows:
            _store(session, workspace_id, batches[i], submission.options, create_fields,
                   results[i])
    return results


def _store(session: Session, workspace_id: int, batch: Batch, options: Options,
           create_fields: bool, result: Result) -> None:
    obj = batch.object
    aliases = ColumnNames(fields.alias_map(obj) if options.aliases
                          else {key: key for key in fields.CORE[obj]})
    keys = attribute_keys(batch.rows, aliases)
    catalog = field_catalog.load_keys(session, workspace_id, obj, keys, lock=True)
    new_fields = NewFields(obj)
    unknown = [k for k in keys if k not in catalog and k.lower() not in catalog]
    if unknown and create_fields and batch.operation != "remove":
        # One creator per object at a time: a concurrent request's new field (its type, its
        # case) is read here once it commits, and the cap counts what exists.
        field_catalog.lock(session, workspace_id, obj)
        catalog.update(field_catalog.load_keys(session, workspace_id, obj, unknown, lock=True))
        new_fields.room = field_catalog.room(session, workspace_id, obj)
    records = _validate(batch, aliases, catalog, new_fields, create_fields, options, result)
    if new_fields.kept:
        writes.add_fields(session, workspace_id, obj, dict(new_fields.kept.values()))
    writes.apply(session, workspace_id, obj, batch.operation, records, options, result)


def attribute_keys(rows: Sequence[Any], aliases: "ColumnNames") -> set[str]:
    """The top-level names of the batch's non-core columns: the catalog entries it needs."""
    keys: set[str] = set()
    for row in rows:
        if isinstance(row, dict):
            for key in row:
                # A NUL or a lone surrogate: the row is rejected for it, and no query may carry it.
                if isinstance(key, str) and aliases.problem(key) is None:
                    top = key.split(NEST, 1)[0]
                    if aliases[top] is None:
                        keys.add(top)
    return keys


class NewFields:
    """Custom fields a batch creates: lower-cased key -> (key as its first row spelled it, type).

    Only accepted rows create fields (a row's proposals are kept when it is), at most `room`.
    """

    def __init__(self, obj: str, room: int = 0):
        self.obj, self.room = obj, room
        self.kept: dict[str, tuple[str, str]] = {}
        self.pending: dict[str, tuple[str, str]] = {}

    def get(self, key: str) -> tuple[str, str] | None:
        folded = key.lower()
        return self.kept.get(folded) or self.pending.get(folded)

    def propose(self, key: str, typ: str) -> bool:
        if len(self.kept) + len(self.pending) >= self.room:
            return False
        self.pending[key.lower()] = (key, typ)
        return True

    def settle(self, accepted: bool) -> None:
        if accepted:
            self.kept.update(self.pending)
        self.pending.clear()

    def refusal(self, keys: list[str]) -> str:
        more = f" ({len(keys) - 1} more new fields in this row)" if len(keys) > 1 else ""
        return f"{keys[0]}: new field not created: {field_catalog.cap_reason(self.obj)}{more}"


# --- validation -----------------------------------------------------------------------------

def _validate(batch: Batch, aliases: ColumnNames, catalog: dict, new_fields: NewFields,
              create_fields: bool, options: Options, result: Result) -> list[Record]:
    """Records of the valid rows (same ID twice: merged in order, so the last one wins)."""
    catalog = {k: (f.key, f.type) for k, f in catalog.items()}  # plain tuples: read per value
    by_id: dict[str, Record] = {}
    latest = latest_event_time() if batch.object == "event" and batch.operation != "remove" \
        else None
    for index, row in enumerate(batch.rows):
        try:
            record = _record(batch.position(index), row, batch, aliases, catalog, new_fields,
                             create_fields, options, latest)
        except RowError as exc:
            new_fields.settle(accepted=False)
            result.rejected.append(Rejection(batch.position(index), exc.row_id, str(exc)))
            continue
        new_fields.settle(accepted=True)
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


def latest_event_time() -> datetime:
    """The latest event time accepted now: CORRELATED_MAX_FUTURE_HOURS ahead of the clock."""
    hours = config.setting("MAX_FUTURE_HOURS")
    return datetime.now(timezone.utc) + timedelta(hours=hours)


def _not_ahead(core: dict[str, Any], latest: datetime, reasons: list[str]) -> None:
    """An event far in the future is a clock or unit mistake; stored, it would read "last seen
    just now" for years."""
    moment = core.get("timestamp")
    if moment is None:
        return
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment > latest:
        hours = config.setting("MAX_FUTURE_HOURS")
        reasons.append(f"timestamp: {moment.isoformat()} is more than {hours:g} hours in the "
                       "future (the limit is CORRELATED_MAX_FUTURE_HOURS)")


def _record(index: int, row: Any, batch: Batch, aliases: ColumnNames, catalog: dict,
            new_fields: NewFields, create_fields: bool, options: Options,
            latest: datetime | None = None) -> Record:
    if not isinstance(row, dict):
        raise RowError([f"row: expected a JSON object, got {fields.describe(row)}"])
    obj, operation = batch.object, batch.operation
    problem = aliases.problem
    unstorable = next((key for key in row if problem(key)), None)
    if unstorable is not None:  # before nesting: no reason may carry the key itself
        raise RowError([f"{ascii(unstorable)[1:-1]}: column name {problem(unstorable)}"])
    core, rest, reasons = _split(nest(row), aliases)
    _defaults(obj, core, options)
    row_id = _core_values(obj, operation, core, reasons)
    if latest is not None:
        _not_ahead(core, latest, reasons)
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
        self._problems: dict[Any, str | None] = {}

    def __missing__(self, key: str) -> str | None:
        self[key] = target = self.aliases.get(key.strip().lower())
        return target

    def problem(self, key: Any) -> str | None:
        """What makes a column name unstorable (checked once per name a batch)."""
        try:
            return self._problems[key]
        except KeyError:
            self._problems[key] = problem = check_json(key)
            return problem


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
    limit = EVENT_NAME_MAX if key == "event" else TEXT_MAX
    if len(text) > limit:
        raise Invalid(f"longer than {limit} characters")
    return text


def _required(obj: str, operation: str, core: dict[str, Any], reasons: list[str],
              options: Options) -> None:
    if operation == "update":
        _not_emptied(obj, core, reasons)
    for key in fields.required_fields(obj, operation):
        if key == ID_FIELD[obj] or core.get(key) is not None:  # the ID: _core_values
            continue
        if key == "user_id" and not options.event_needs_user and core.get("account_id"):
            continue
        if any(r.startswith(f"{key}:") for r in reasons):
            continue
        hint = " (or account_id)" if key == "user_id" and not options.event_needs_user else ""
        reasons.append(f"{key}{hint}: required")


def _not_emptied(obj: str, core: dict[str, Any], reasons: list[str]) -> None:
    """An update may leave a required field out, never clear it ("" and null both would)."""
    for key in fields.REQUIRED[obj]:
        if key in core and core[key] is None and key != ID_FIELD[obj] \
                and not any(r.startswith(f"{key}:") for r in reasons):
            reasons.append(f"{key}: required; an update cannot empty it (leave the column out "
                           "to keep the stored value)")


def _attributes(rest: dict[str, Any], catalog: dict, new_fields: NewFields,
                create_fields: bool, reasons: list[str]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    over_cap: list[str] = []
    for key, value in rest.items():
        problem = check_json(value)
        if problem:
            reasons.append(f"{key}: {problem}")
            continue
        known = catalog.get(key) or catalog.get(key.lower()) or new_fields.get(key)
        if known is not None:
            name, typ = known  # the catalog's spelling of the key, whatever the row's case
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
            if not new_fields.propose(key, typ):
                over_cap.append(key)
                continue
        try:
            attrs[name] = fields.coerce(value, typ)
        except Invalid as exc:
            reasons.append(f"{key}: {exc} (field type {typ})")
    if over_cap:
        reasons.append(new_fields.refusal(over_cap))
    return attrs


def check_json(value: Any, depth: int = 0) -> str | None:
    """What makes a value unstorable as JSON on both databases, or None."""
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character"
        if value.isascii():  # the common case, and a flag lookup: nothing to encode
            return None
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
