"""The catalog's writes and targeted reads: custom fields created under one lock per object (so
a new field's type and the cap hold under concurrent writers), hidden and deleted fields.

Ingest reads only the keys a batch names, never the whole catalog.
"""
from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import database
from ..database import chunks
from ..models import RECORDS, Field
from ..vocabulary import COLLECTION, OBJECTS
from .fields import alias_map, label_for

MAX_CUSTOM_FIELDS = 200  # per object; create_app sets it from CORRELATED_MAX_CUSTOM_FIELDS
LOCK_SPACE = 0x4649  # the advisory-lock namespace of catalog changes
VALUES = {"account": "traits", "user": "traits", "event": "properties"}


class CatalogError(ValueError):
    """A catalog change refused; the message says why, in the admin's terms."""


class FieldExists(CatalogError):
    pass


class NoSuchField(CatalogError):
    pass


def cap_reason(obj: str) -> str:
    return (f"{COLLECTION[obj]} have the maximum of {MAX_CUSTOM_FIELDS} custom fields "
            f"(CORRELATED_MAX_CUSTOM_FIELDS): delete unused ones or raise the limit")


def load_keys(session: Session, workspace_id: int, obj: str, keys: Iterable[str],
              lock: bool = False) -> dict[str, Field]:
    """The fields named by `keys` in any case, keyed by their key and by its lower case.

    `lock` (PostgreSQL) holds them against a concurrent delete until commit, so no value is
    written for a field deleted meanwhile (FOR KEY SHARE: relabelling and hiding still go on).
    """
    keys = set(keys)
    # lower(key) is the unique index's expression (an index lookup; an OR of it and the primary
    # key scanned the whole catalog on SQLite). SQL's lower() may fold only ASCII: keys beyond
    # it are also looked up as spelled.
    lookups = [(sa.func.lower(Field.key), sorted({k.lower() for k in keys})),
               (Field.key, sorted(k for k in keys if not k.isascii()))]
    found: dict[str, Field] = {}
    for column, values in lookups:
        for part in chunks(values):
            query = sa.select(Field).where(Field.workspace_id == workspace_id,
                                           Field.object == obj, column.in_(part))
            if lock:
                query = query.with_for_update(read=True, key_share=True)
            for f in session.scalars(query):
                found[f.key] = f
                found.setdefault(f.key.lower(), f)
    return found


def lock(session: Session, workspace_id: int, obj: str) -> None:
    """One creator of custom fields per workspace and object until commit (PostgreSQL; SQLite's
    writers are one at a time already): a waiting writer then reads what the first created."""
    if not database.is_sqlite(session.connection()):
        key = (workspace_id * len(OBJECTS) + OBJECTS.index(obj)) % 2**31
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:space, :key)"),
                        {"space": LOCK_SPACE, "key": key})


def room(session: Session, workspace_id: int, obj: str) -> int:
    """How many custom fields the object may still get (hidden ones count: they exist)."""
    count = session.scalar(sa.select(sa.func.count()).select_from(Field).where(
        Field.workspace_id == workspace_id, Field.object == obj, Field.is_default.is_(False)))
    return max(0, MAX_CUSTOM_FIELDS - count)


def create(session: Session, workspace_id: int, obj: str, key: str, typ: str,
           label: str | None = None, display_format: str | None = None) -> Field:
    """An admin's custom field (REST API, dashboard), under the lock ingest creates them under."""
    lock(session, workspace_id, obj)
    known = load_keys(session, workspace_id, obj, [key])
    existing = known.get(key) or known.get(key.lower())
    if existing is not None:
        raise FieldExists(f"the {obj} field {existing.key!r} exists")
    core = alias_map(obj).get(key.lower())
    if core is not None:
        raise FieldExists(f"{key!r} is an alias of the core {obj} field {core!r}")
    if room(session, workspace_id, obj) <= 0:
        raise CatalogError(cap_reason(obj))
    field = Field(workspace_id=workspace_id, object=obj, key=key, label=label or label_for(key),
                  type=typ, is_default=False, display_format=display_format, hidden=False)
    session.add(field)
    session.flush()
    return field


def custom_field(session: Session, workspace_id: int, obj: str, key: str) -> Field:
    """The custom field `key` of `obj` (exactly as the catalog spells it), or NoSuchField."""
    # No stored key has a NUL (and PostgreSQL refuses one in a query).
    known = obj in OBJECTS and "\x00" not in key
    field = session.get(Field, (workspace_id, obj, key)) if known else None
    if field is None:
        raise NoSuchField(f"no {obj} field {key!r}")
    if field.is_default:
        raise CatalogError(f"{key!r} is a default {obj} field: only custom fields can be "
                           "hidden or deleted")
    return field


def set_hidden(session: Session, workspace_id: int, obj: str, key: str, hidden: bool) -> Field:
    field = custom_field(session, workspace_id, obj, key)
    field.hidden = hidden
    session.flush()
    return field


def delete(session: Session, workspace_id: int, obj: str, key: str) -> int:
    """Delete a custom field and its values from every record; how many records had one.

    A sync that sends the key again creates the field anew (from its first value's type).
    """
    custom_field(session, workspace_id, obj, key)  # an unknown object or key: before locking
    lock(session, workspace_id, obj)
    field = custom_field(session, workspace_id, obj, key)
    removed = remove_values(session, workspace_id, obj, field.key)
    session.delete(field)
    session.flush()
    return removed


def remove_values(session: Session, workspace_id: int, obj: str, key: str) -> int:
    """`key` taken out of the records' JSON, in one statement (SQLite: one per shape of key)."""
    table = RECORDS[obj]
    column = table.c[VALUES[obj]]
    mine = table.c.workspace_id == workspace_id
    if not database.is_sqlite(session.connection()):
        has = column.op("?", return_type=sa.Boolean)(sa.literal(key, sa.Text))
        stmt = sa.update(table).where(mine, has).values(
            {column: column.op("-")(sa.literal(key, sa.Text))})
        return session.execute(stmt).rowcount
    if '"' not in key and "\\" not in key:  # a quoted JSON path addresses it
        path = f'$."{key}"'
        stmt = sa.update(table).where(mine, sa.func.json_type(column, path).is_not(None)).values(
            {column: sa.func.json_remove(column, path)})
        return session.execute(stmt).rowcount
    return _remove_unaddressable(session, table, column, mine, key)


def _remove_unaddressable(session: Session, table: sa.Table, column: sa.Column, mine: object,
                          key: str) -> int:
    """SQLite paths cannot quote `"` or `\\`: the records that have such a key are rewritten."""
    id_column = next(c for c in table.primary_key.columns if c.name != "workspace_id")
    has = sa.text(f"EXISTS (SELECT 1 FROM json_each({table.name}.{column.name}) AS j "
                  "WHERE j.key = :key)").bindparams(key=key)
    rows = session.execute(sa.select(id_column, column).where(mine, has)).all()
    if rows:
        values = [{"id": rid, "value": {k: v for k, v in doc.items() if k != key}}
                  for rid, doc in rows]
        session.execute(sa.update(table).where(mine, id_column == sa.bindparam("id"))
                        .values({column: sa.bindparam("value")}), values)
    return len(rows)
