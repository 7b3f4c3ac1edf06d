"""Inbound webhook connections (Variance style): create, update and find them, and turn a
payload into engine rows through the connection's mapping.

A connection's mapping says where the rows are in the JSON (`wrapper`), which payload keys give
the core fields, and how a row finds its record (ID first, then name or email; or a custom
property, update only). Everything not mapped is handed to the engine as it came, so unmapped
keys become dimensions/properties and the engine's rules still hold.
"""
from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound

from ..auth import basic_secret
from ..ingest import fields
from ..ingest.contract import Batch, Options, Rejection, Submission
from ..ingest.engine import check_json
from ..ingest.log import keepable
from ..models import Account, HeldPayload, User, WebhookConnection, utcnow
from ..vocabulary import ID_FIELD, parse_object

BEHAVIORS = ("upsert", "update")
SETTINGS = ("name", "behavior", "enabled", "enforce_auth", "all_or_nothing", "mapping")
# Requests a disabled connection keeps for replay; beyond this it answers 503, so the sender
# retries later instead of losing them (the app's HELD_PAYLOADS_PER_CONNECTION overrides it).
HELD_MAX = 100
TOKEN_PREFIX = "whk_"
NAME_MAX = 120
# A body that is one object holding the rows under one of these keys (others need a wrapper
# path: a row may well have a list-valued "data" column).
BATCH_KEYS = ("batch", "rows")

# Mapping keys each object accepts (every value is a payload key or dotted path, except
# `event_name`, a fixed event name, and `match_property`, a dimension of ours).
MAPPING_KEYS: dict[str, tuple[str, ...]] = {
    "account": ("wrapper", "id_field", "name_field", "match_property", "match_field"),
    "user": ("wrapper", "id_field", "email_field", "match_property", "match_field",
             "account_id_field", "account_name_field"),
    "event": ("wrapper", "event_field", "event_name", "user_id_field", "account_id_field",
              "timestamp_field", "event_id_field"),
}
# Mapping key -> the core field it fills, per object.
TARGETS: dict[str, dict[str, str]] = {
    "account": {"id_field": "account_id", "name_field": "name"},
    "user": {"id_field": "user_id", "email_field": "email", "account_id_field": "account_id"},
    "event": {"event_field": "event", "user_id_field": "user_id",
              "account_id_field": "account_id", "timestamp_field": "timestamp",
              "event_id_field": "event_id"},
}


class Invalid(ValueError):
    """Settings that cannot be saved; `errors` maps each setting to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class PayloadError(ValueError):
    """A payload the mapping cannot read at all (the wrapper path is not there)."""


# --- the connections themselves -------------------------------------------------------------

def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_connection(session: Session, workspace_id: int, name: str, obj: str,
                      behavior: str = "upsert", **settings: Any) -> WebhookConnection:
    """A new, disabled connection with its own unguessable id and header value."""
    errors: dict[str, str] = {}
    obj = _object(obj, errors)
    connection = WebhookConnection(
        workspace_id=workspace_id, id=secrets.token_urlsafe(24), name="", object=obj or "account",
        behavior="upsert", enabled=False, enforce_auth=True, auth_token=new_token(), mapping={},
        all_or_nothing=False,
    )
    _apply(connection, {"name": name, "behavior": behavior, **settings}, errors)
    if errors:
        raise Invalid(errors)
    session.add(connection)
    session.flush()
    return connection


def update_connection(connection: WebhookConnection, changes: dict[str, Any]) -> None:
    """Apply validated changes (any of SETTINGS); the caller commits."""
    errors: dict[str, str] = {}
    _apply(connection, changes, errors)
    if errors:
        raise Invalid(errors)


def _apply(connection: WebhookConnection, changes: dict[str, Any], errors: dict[str, str]) -> None:
    unknown = sorted(set(changes) - set(SETTINGS))
    for key in unknown:
        errors[key] = "not a setting of a connection (object cannot change)" if key == "object" \
            else "not a setting of a connection"
    values = {
        "name": _name(changes["name"], errors) if "name" in changes else connection.name,
        "behavior": _choice(changes.get("behavior", connection.behavior), BEHAVIORS,
                            "behavior", errors),
        "enabled": _flag(changes, "enabled", connection.enabled, errors),
        "enforce_auth": _flag(changes, "enforce_auth", connection.enforce_auth, errors),
        "all_or_nothing": _flag(changes, "all_or_nothing", bool(connection.all_or_nothing),
                                errors),
        "mapping": _mapping(connection.object, changes.get("mapping", connection.mapping), errors),
    }
    if values["mapping"] and values["mapping"].get("match_property") \
            and values["behavior"] != "update":
        errors["behavior"] = "matching on a custom property works with behavior 'update' only"
    if not errors:
        for key, value in values.items():
            setattr(connection, key, value)


def _object(value: Any, errors: dict[str, str]) -> str | None:
    obj = parse_object(value)
    if obj is None:
        errors["object"] = "expected account, user or event"
    return obj


def _name(value: Any, errors: dict[str, str]) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        errors["name"] = "required"
    elif len(text) > NAME_MAX:
        errors["name"] = f"longer than {NAME_MAX} characters"
    elif check_json(text):
        errors["name"] = check_json(text)
    return text


def _choice(value: Any, allowed: tuple[str, ...], key: str, errors: dict[str, str]) -> Any:
    if value not in allowed:
        errors[key] = f"expected one of {', '.join(allowed)}"
    return value


def _flag(changes: dict[str, Any], key: str, current: bool, errors: dict[str, str]) -> bool:
    value = changes.get(key, current)
    if not isinstance(value, bool):
        errors[key] = "expected true or false"
    return value


def _mapping(obj: str, mapping: Any, errors: dict[str, str]) -> dict[str, str]:
    """The mapping with empty entries dropped; unknown keys and non-text values are errors."""
    if not isinstance(mapping, dict):
        errors["mapping"] = "expected an object"
        return {}
    clean: dict[str, str] = {}
    for key, value in mapping.items():
        if key not in MAPPING_KEYS[obj]:
            errors[f"mapping.{key}"] = (f"not a setting of the {obj} mapping "
                                        f"(expected {', '.join(MAPPING_KEYS[obj])})")
        elif value is not None and not isinstance(value, str):
            errors[f"mapping.{key}"] = "expected text"
        elif value and check_json(value):
            errors[f"mapping.{key}"] = check_json(value)
        elif value and value.strip():
            clean[key] = value.strip()
    if UNSAFE_PROPERTY.search(clean.get("match_property", "")):
        errors["mapping.match_property"] = ('a dimension key without " or \\ or control '
                                            "characters (they cannot name a JSON key in SQL)")
    if bool(clean.get("match_property")) != bool(clean.get("match_field")):
        errors["mapping.match_field"] = "match_property and match_field go together"
    if obj == "event" and clean.get("event_field") and clean.get("event_name"):
        errors["mapping.event_name"] = "give an event type field or a fixed name, not both"
    return clean


# SQLite reads the key inside a JSON path ('$."key"'), where these cannot be escaped.
UNSAFE_PROPERTY = re.compile(r'["\\\x00-\x1f\x7f]')


def rotate_token(connection: WebhookConnection) -> str:
    """A new header value; the old one stops working at the next commit."""
    connection.auth_token = new_token()
    return connection.auth_token


def list_connections(session: Session, workspace_id: int) -> list[WebhookConnection]:
    return list(session.scalars(
        sa.select(WebhookConnection).where(WebhookConnection.workspace_id == workspace_id)
        .order_by(WebhookConnection.created_at, WebhookConnection.name)))


def find_connection(session: Session, workspace_id: int,
                    connection_id: str) -> WebhookConnection | None:
    """The workspace's connection with this id, or None (another workspace's is None too)."""
    return session.get(WebhookConnection, (workspace_id, connection_id))


def get_connection_or_404(session: Session, workspace_id: int,
                          connection_id: str) -> WebhookConnection:
    """The workspace's connection with this id; a 404 otherwise (another workspace's too)."""
    connection = find_connection(session, workspace_id, connection_id)
    if connection is None:
        raise NotFound("no such connection in this workspace")
    return connection


def connection_by_id(session: Session, connection_id: str) -> WebhookConnection | None:
    """The connection a webhook URL names; the unguessable id alone identifies it."""
    return session.scalars(
        sa.select(WebhookConnection).where(WebhookConnection.id == connection_id)).first()


def authorized(connection: WebhookConnection, header: str | None) -> bool:
    """Does the Authorization header carry the connection's value (alone, after 'Bearer', or
    in HTTP Basic as the password or user name)?"""
    if not header:
        return False
    value = header.strip()
    scheme, _, rest = value.partition(" ")
    candidates = [value] + ([rest.strip()] if scheme.lower() == "bearer" else [])
    if scheme.lower() == "basic" and rest.strip():
        candidates.append(basic_secret(rest.strip(), TOKEN_PREFIX) or "")
    expected = connection.auth_token.encode()
    return any(hmac.compare_digest(c.encode(), expected) for c in candidates)


def keep_payload(connection: WebhookConnection, body: Any, when: datetime | None = None) -> None:
    """Remember `body` as the latest payload (secrets redacted, size capped); the caller commits."""
    connection.latest_payload = keepable(body)
    connection.latest_payload_at = when or utcnow()


# --- held payloads: what a disabled connection receives ------------------------------------

def hold(session: Session, connection: WebhookConnection, body: bytes, content_type: str,
         method: str, received_at: datetime, limit: int = HELD_MAX) -> int | None:
    """Keep a request for replay; how many are now held, or None when `limit` already are
    (checked, not locked: concurrent requests may pass it by a few). The caller commits."""
    held = held_count(session, connection)
    if held >= limit:
        return None
    session.add(HeldPayload(workspace_id=connection.workspace_id, connection_id=connection.id,
                            received_at=received_at, method=method,
                            content_type=content_type[:255], body=body))
    return held + 1


def held_count(session: Session, connection: WebhookConnection) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(HeldPayload)
                          .where(*_held(connection))) or 0


def held_counts(session: Session, workspace_id: int) -> dict[str, int]:
    """Connection id -> requests held, for every connection of a workspace, in one query."""
    return dict(session.execute(
        sa.select(HeldPayload.connection_id, sa.func.count())
        .where(HeldPayload.workspace_id == workspace_id)
        .group_by(HeldPayload.connection_id)).all())


def held_ids(session: Session, connection: WebhookConnection) -> list[int]:
    """The held requests' ids, oldest first (the order they are replayed in)."""
    return list(session.scalars(sa.select(HeldPayload.id).where(*_held(connection))
                                .order_by(HeldPayload.id)))


def _held(connection: WebhookConnection) -> tuple:
    return (HeldPayload.workspace_id == connection.workspace_id,
            HeldPayload.connection_id == connection.id)


# --- reading payloads -----------------------------------------------------------------------

def get_path(data: Any, path: str) -> Any:
    """`data["a"]["b"]` for "a.b" (a literal "a.b" key wins; digits index lists); None if absent."""
    if isinstance(data, dict) and path in data:
        return data[path]
    node = data
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _pop_path(row: dict[str, Any], path: str) -> Any:
    """Remove and return the value at `path` (None if absent); emptied parents go too."""
    if path in row:
        return row.pop(path)
    head, _, tail = path.partition(".")
    child = row.get(head)
    if not tail or not isinstance(child, dict) or get_path(child, tail) is None:
        return None
    child = dict(child)  # copy on the way down: the caller's row stays intact
    value = _pop_path(child, tail)
    if child:
        row[head] = child
    else:
        del row[head]
    return value


def extract_rows(body: Any, wrapper: str | None) -> list[Any]:
    """The rows of a payload: at the wrapper path, or the array / object / {"batch": [...]} body."""
    data = body
    if wrapper:
        data = get_path(body, wrapper)
        if data is None:
            raise PayloadError(f"wrapper path {wrapper!r}: not found in the payload")
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        wrapped = next((data[k] for k in BATCH_KEYS if isinstance(data.get(k), list)), None)
        return wrapped if (wrapped is not None and not wrapper) else [data]
    raise PayloadError(f"{'wrapper path ' + repr(wrapper) if wrapper else 'body'}: "
                       "expected a JSON array or object of rows")


def payload_keys(payload: Any, wrapper: str | None = None, sample: int = 50) -> list[str]:
    """The keys (dotted when nested) of a payload's first rows, offered by the mapping editor."""
    try:
        rows = extract_rows(payload, wrapper)
    except PayloadError:
        rows = []
    keys: dict[str, None] = {}
    for row in rows[:sample]:
        if isinstance(row, dict):
            for key in _flat_keys(row):
                keys.setdefault(key)
    return list(keys)


def wrapper_candidates(payload: Any, prefix: str = "", depth: int = 0) -> list[str]:
    """Dotted paths of the arrays of objects in a payload (where the rows may be)."""
    found: list[str] = []
    if isinstance(payload, dict) and depth < 4:
        for key, value in payload.items():
            path = f"{prefix}{key}"
            if isinstance(value, list) and value and isinstance(value[0], dict):
                found.append(path)
            found.extend(wrapper_candidates(value, path + ".", depth + 1))
    return found


def suggested_wrapper(connection: WebhookConnection) -> str:
    """The saved wrapper path; before any mapping is saved, the first array of rows found."""
    mapping = connection.mapping or {}
    if mapping:
        return mapping.get("wrapper", "")
    found = wrapper_candidates(connection.latest_payload)
    return found[0] if found else ""


def _flat_keys(row: dict[str, Any], prefix: str = "", depth: int = 0) -> Iterable[str]:
    for key, value in row.items():
        yield prefix + str(key)
        if isinstance(value, dict) and depth < 2:
            yield from _flat_keys(value, f"{prefix}{key}.", depth + 1)


# --- applying a mapping ---------------------------------------------------------------------

@dataclass
class Draft:
    """A row being mapped: its position, the values of the mapped keys, and the rest."""

    position: int
    values: dict[str, Any]
    rest: dict[str, Any]
    core: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # why the row cannot be matched, if it cannot


def submission(session: Session, connection: WebhookConnection, rows: list[Any], remove: bool,
               received_at: datetime | None = None) -> Submission:
    """Apply the connection's mapping: engine rows, and the rows that could not be matched."""
    obj, mapping = connection.object, connection.mapping or {}
    batch = Batch(obj, _operation(connection, mapping, remove), [], [])
    drafts = []
    for position, row in enumerate(rows):
        if not isinstance(row, dict):
            reason = f"row: expected a JSON object, got {fields.describe(row)}"
            batch.refused.append(Rejection(position, None, reason))
            continue
        drafts.append(_draft(position, row, obj, mapping))
    _resolve(session, connection.workspace_id, obj, mapping, drafts, batch)
    options = _options(obj, mapping, received_at)
    options.all_or_nothing = bool(connection.all_or_nothing)
    return Submission("connection", [batch], options=options)


def _operation(connection: WebhookConnection, mapping: dict[str, str], remove: bool) -> str:
    if remove:
        return "remove"
    if connection.object == "event":
        return "insert"
    return "update" if connection.behavior == "update" or mapping.get("match_property") \
        else "upsert"


def _options(obj: str, mapping: dict[str, str], received_at: datetime | None) -> Options:
    # Only the mapping (or a core field's own name) says what a key is: no alias guessing.
    options = Options(aliases=False)
    if obj == "event":
        options.event_needs_user = False  # an account-level event is allowed on connections
        options.default_event_name = mapping.get("event_name")
        if not mapping.get("timestamp_field"):
            options.default_timestamp = received_at or utcnow()
    return options


def _draft(position: int, row: dict[str, Any], obj: str, mapping: dict[str, str]) -> Draft:
    rest = dict(row)
    values = {}
    for key in MAPPING_KEYS[obj]:
        path = mapping.get(key)
        if path and key.endswith("_field"):
            values[key] = _pop_path(rest, path)
    return Draft(position, values, rest)


def _resolve(session: Session, workspace_id: int, obj: str, mapping: dict[str, str],
             drafts: list[Draft], batch: Batch) -> None:
    """Fill each draft's core fields (looking records up once per batch) and emit engine rows."""
    for draft in drafts:
        for key, target in TARGETS[obj].items():
            if _given(draft.values.get(key)):
                draft.core[target] = draft.values[key]
    if obj in ("account", "user"):
        _match_records(session, workspace_id, obj, mapping, drafts)
    if obj == "user" and mapping.get("account_name_field"):
        _link_accounts(session, workspace_id, drafts)
    targets = {TARGETS[obj][k] for k in mapping if k in TARGETS[obj]}
    for draft in drafts:
        if draft.reason:
            batch.refused.append(Rejection(draft.position, _row_id(obj, draft), draft.reason))
            continue
        batch.rows.append(_engine_row(draft, targets))  # type: ignore[attr-defined]
        batch.positions.append(draft.position)  # type: ignore[union-attr]


def _engine_row(draft: Draft, targets: set[str]) -> dict[str, Any]:
    """Unmapped keys as they came, minus those named like a core field the mapping sets."""
    taken = targets | set(draft.core)
    row = {k: v for k, v in draft.rest.items() if str(k).strip().lower() not in taken}
    row.update(draft.core)
    return row


def _row_id(obj: str, draft: Draft) -> str | None:
    value = draft.core.get(ID_FIELD[obj])
    return _text(value) if _given(value) else None


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


# --- matching rows to records ---------------------------------------------------------------

def _match_records(session: Session, workspace_id: int, obj: str, mapping: dict[str, str],
                   drafts: list[Draft]) -> None:
    """ID first, then name (accounts) or email (users); or a custom property (update only)."""
    id_key = ID_FIELD[obj]
    if mapping.get("match_property"):
        _match_custom(session, workspace_id, obj, mapping, drafts, id_key)
        return
    fallback = "name" if obj == "account" else "email"
    if not mapping.get(f"{fallback}_field"):
        return
    ids = sorted({_text(d.core[id_key]) for d in drafts if _given(d.core.get(id_key))})
    known = _existing_ids(session, workspace_id, obj, ids)
    needs = [d for d in drafts if not _given(d.core.get(id_key))
             or _text(d.core[id_key]) not in known]
    by_value = _ids_by(session, workspace_id, obj, fallback,
                       [_text(d.core[fallback]) for d in needs if _given(d.core.get(fallback))])
    for draft in needs:
        _fall_back(draft, obj, id_key, fallback, by_value)


def _fall_back(draft: Draft, obj: str, id_key: str, fallback: str,
               by_value: dict[str, list[str]]) -> None:
    value = _text(draft.core[fallback]) if _given(draft.core.get(fallback)) else None
    found = by_value.get(_fold(fallback, value), []) if value else []
    if len(found) == 1:
        draft.core[id_key] = found[0]
    elif len(found) > 1:
        draft.reason = (f"{fallback}: {len(found)} {obj}s have {fallback} {value!r}; "
                        f"send the {id_key} to tell them apart")
    elif not _given(draft.core.get(id_key)):
        draft.reason = f"{id_key}: required (no {obj} with {fallback} {value!r} to match)" \
            if value else f"{id_key}: required"
    # else: an unknown ID -- the engine creates it (upsert) or names it (update)


def _match_custom(session: Session, workspace_id: int, obj: str, mapping: dict[str, str],
                  drafts: list[Draft], id_key: str) -> None:
    prop, source = mapping["match_property"], mapping["match_field"]
    if UNSAFE_PROPERTY.search(prop):  # saved before it was validated: refuse, don't crash
        for draft in drafts:
            draft.reason = f"match_property {prop!r}: not usable; change the connection's mapping"
        return
    values = [_text(d.values["match_field"]) for d in drafts if _given(d.values.get("match_field"))]
    by_value = _ids_by(session, workspace_id, obj, prop, values, custom=True)
    for draft in drafts:
        raw = draft.values.get("match_field")
        found = by_value.get(_text(raw), []) if _given(raw) else []
        if not _given(raw):
            draft.reason = f"{prop}: nothing to match on (the row has no {source!r})"
        elif len(found) != 1:
            draft.reason = f"{prop}: {_count(len(found), obj)} with {prop} {_text(raw)!r}"
        else:
            draft.core[id_key] = found[0]


def _link_accounts(session: Session, workspace_id: int, drafts: list[Draft]) -> None:
    """A user's account given by name: resolved to the account's ID, in one query."""
    pending = [d for d in drafts if not d.reason and not _given(d.core.get("account_id"))
               and _given(d.values.get("account_name_field"))]
    by_name = _ids_by(session, workspace_id, "account", "name",
                      [_text(d.values["account_name_field"]) for d in pending])
    for draft in pending:
        name = _text(draft.values["account_name_field"])
        found = by_name.get(name, [])
        if len(found) == 1:
            draft.core["account_id"] = found[0]
        else:
            draft.reason = f"account: {_count(len(found), 'account')} named {name!r}"


def _count(n: int, noun: str) -> str:
    return f"no {noun}" if n == 0 else f"{n} {noun}{'s' if n > 1 else ''}"


def _fold(column: str, value: str | None) -> str | None:
    """Emails match case-insensitively; names and custom properties exactly."""
    return value.lower() if value is not None and column == "email" else value


def _storable(values: Iterable[str]) -> list[str]:
    """The values a text column can hold: one with a NUL or a lone surrogate matches no record
    (and would fail the query); the engine names the problem when the row gets there."""
    return [v for v in values if not check_json(v)]


def _existing_ids(session: Session, workspace_id: int, obj: str, ids: list[str]) -> set[str]:
    ids = _storable(ids)
    if not ids:
        return set()
    model = Account if obj == "account" else User
    key = model.account_id if obj == "account" else model.user_id
    return set(session.scalars(sa.select(key).where(model.workspace_id == workspace_id,
                                                     key.in_(ids))))


def _ids_by(session: Session, workspace_id: int, obj: str, column: str, values: list[str],
            custom: bool = False) -> dict[str, list[str]]:
    """value -> IDs of the live records having it, in ONE query for the whole batch."""
    wanted = sorted({_fold(column, v) for v in _storable(values)})
    if not wanted:
        return {}
    model = Account if obj == "account" else User
    key = model.account_id if obj == "account" else model.user_id
    if custom:
        expr = sa.cast(model.traits[column].as_string(), sa.String)
    else:
        expr = getattr(model, column)
        expr = sa.func.lower(expr) if column == "email" else expr
    query = sa.select(expr, key).where(model.workspace_id == workspace_id,
                                       model.archived_at.is_(None), expr.in_(wanted))
    found: dict[str, list[str]] = {}
    for value, record_id in session.execute(query):
        found.setdefault(value, []).append(record_id)
    return found
