"""Dimension history: what each account and user upsert changed, written in its transaction.

The upsert reads the stored rows of a batch once (`writes.existing`, with the `columns` named
here); the batch's merge patch is applied to them in memory, and every top-level dimension (and
core column: name, email, account_id) whose value differs becomes one `dimension_changes` row.
Changed and new entities are marked stale, so the signals worker knows whose conditions to look
at again. Both writes are one statement each, whatever the batch size: on PostgreSQL the rows
travel as one JSON or array parameter (an executemany there is a round trip per row).
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import database
from ..models import UTC, Account, User

if TYPE_CHECKING:
    from .engine import Record

ENABLED = True  # bench/signals.py measures ingest with and without it
TABLES = {"account": Account.__table__, "user": User.__table__}
CORE = {"account": ("name",), "user": ("email", "account_id")}

CHANGES_FROM_JSON = """
INSERT INTO dimension_changes (workspace_id, object, entity_id, field, old_value, new_value,
                               changed_at)
SELECT :workspace_id, :object, c.entity_id, c.field, c.old_value, c.new_value, :now
FROM jsonb_to_recordset(CAST(:rows AS jsonb))
     AS c (entity_id text, field text, old_value text, new_value text)
"""
# SQLite: the changes travel as one JSON parameter too; sqlite3's executemany was cheap in C,
# but SQLAlchemy's processing of every row's parameters (the timestamp's above all) was not.
CHANGES_FROM_JSON_SQLITE = """
INSERT INTO dimension_changes (workspace_id, object, entity_id, field, old_value, new_value,
                               changed_at)
SELECT :workspace_id, :object, json_extract(c.value, '$[0]'), json_extract(c.value, '$[1]'),
       json_extract(c.value, '$[2]'), json_extract(c.value, '$[3]'), :now
FROM json_each(:rows) AS c
"""
MARKS = {  # the keys as one JSON array (see models.StaleKey)
    "postgresql": "INSERT INTO stale_keys (workspace_id, kind, keys) "
                  "VALUES (:workspace_id, :kind, CAST(:keys AS jsonb))",
    # Only where a signal of this object will read the marks (pending.keep drops them
    # otherwise; a signal created later starts with a full evaluation). Race-free on SQLite
    # alone: this writer holds the database from BEGIN IMMEDIATE to its commit, so no signal
    # can be created between this check and the rows becoming visible. On PostgreSQL one could
    # (READ COMMITTED), and its first evaluation would miss the batch: marks are always written.
    "sqlite": "INSERT INTO stale_keys (workspace_id, kind, keys) SELECT :workspace_id, :kind, "
              ":keys WHERE EXISTS (SELECT 1 FROM signals AS s "
              "WHERE s.workspace_id = :workspace_id AND s.object = :kind)",
}


def columns(obj: str) -> tuple[str, ...]:
    """The columns the upsert's read of the stored rows must include for the history."""
    return ("traits", *CORE[obj]) if ENABLED and obj in TABLES else ()


def record(session: Session, workspace_id: int, obj: str, updated: list[Record],
           created: list[Record], stored: dict[str, dict[str, Any]], now: datetime) -> None:
    """Write the dimension changes `updated` (rows that exist; `stored`: id -> their `columns`
    as read) are about to make; mark the changed and the `created` entities stale. Call before
    the upsert."""
    if not ENABLED or obj not in TABLES:
        return
    rows = list(_changes(obj, updated, stored))
    if rows:
        _insert_changes(session, workspace_id, obj, rows, now)
    mark(session, workspace_id, obj, {r["entity_id"] for r in rows} | {r.id for r in created})


def removed(session: Session, workspace_id: int, obj: str, ids: Iterable[str]) -> None:
    """Mark removed (archived or deleted) entities stale: they leave the signals they are in."""
    if ENABLED and obj in TABLES:
        mark(session, workspace_id, obj, set(ids))


def _insert_changes(session: Session, workspace_id: int, obj: str, rows: list[dict[str, Any]],
                    now: datetime) -> None:
    bind = session.connection()
    if database.is_sqlite(bind):  # [id, field, old, new] (the values as JSON text, or null)
        text, payload = CHANGES_FROM_JSON_SQLITE, database.json_dumps(
            [[r["entity_id"], r["field"], as_text(r["old"]), as_text(r["new"])] for r in rows])
    else:
        text, payload = CHANGES_FROM_JSON, database.json_dumps(
            [{"entity_id": r["entity_id"], "field": r["field"], "old_value": as_text(r["old"]),
              "new_value": as_text(r["new"])} for r in rows])
    session.execute(sa.text(text).bindparams(sa.bindparam("now", type_=UTC)), {
        "workspace_id": workspace_id, "object": obj, "now": now, "rows": payload})


def mark(session: Session, workspace_id: int, kind: str, keys: set[str]) -> None:
    """Mark accounts or users stale in one statement."""
    keys.discard("")
    keys.discard(None)  # type: ignore[arg-type]
    if not keys:
        return
    session.execute(sa.text(MARKS[session.connection().dialect.name]), {
        "workspace_id": workspace_id, "kind": kind, "keys": database.json_dumps(sorted(keys))})


def _changes(obj: str, records: Iterable[Record],
             stored: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    core = CORE[obj]
    for r in records:
        row = stored.get(r.id)
        if row is None:
            continue
        traits = row.get("traits") or {}
        given = {k: v for k, v in r.core.items() if k in core}
        given.update(r.attrs)
        for field, patch in given.items():
            if field in core:  # a column: the value replaces
                before, after = row.get(field), patch
            else:  # a trait: merge-patched
                before = traits.get(field)
                after = patched(before, patch) if isinstance(patch, dict) else patch
            if after != before:
                yield {"entity_id": r.id, "field": field, "old": before, "new": after}


def patched(target: Any, patch: Any) -> Any:
    """RFC 7396 merge patch of one value, as the upsert's SQL applies it (None: removed)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = patched(out.get(key), value)
    return out


def as_text(value: Any) -> str | None:
    """A value as stored in the history: JSON text (None stays None, for "not set")."""
    return None if value is None else database.json_dumps(value)
