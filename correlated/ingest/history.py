"""Dimension history: what each account and user upsert changed, written in its transaction.

The current values of the rows a batch updates are read in one query per chunk of IDs, the
batch's merge patch is applied to them in memory, and every top-level dimension (and core
column: name, email, account_id) whose value differs becomes one `dimension_changes` row, all
in one executemany. Changed and new entities are marked stale, so the signals worker knows
whose conditions to look at again.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import database
from ..analytics import summaries
from ..database import chunks
from ..models import Account, User
from ..signals.models import DimensionChange

if TYPE_CHECKING:
    from .engine import Record

ENABLED = True  # bench/signals.py measures ingest with and without it
TABLES = {"account": Account.__table__, "user": User.__table__}
KEYS = {"account": "account_id", "user": "user_id"}
CORE = {"account": ("name",), "user": ("email", "account_id")}


def record(session: Session, workspace_id: int, obj: str, updated: list[Record],
           created: list[Record], now: datetime) -> None:
    """Write the dimension changes `updated` (rows that exist) are about to make; mark the
    changed and the `created` entities stale. Call before the upsert."""
    if not ENABLED or obj not in TABLES:
        return
    rows = list(_changes(obj, updated, _current(session, workspace_id, obj, updated), now))
    if rows:
        for row in rows:
            row["workspace_id"] = workspace_id
        session.execute(sa.insert(DimensionChange.__table__), rows)
    touched = {r["entity_id"] for r in rows} | {r.id for r in created}
    if touched:
        summaries.mark_stale(session, workspace_id, **{f"{obj}s": touched})


def _current(session: Session, workspace_id: int, obj: str,
             records: list[Record]) -> dict[str, dict[str, Any]]:
    """id -> {dimension or core column: value} as stored now."""
    table = TABLES[obj]
    key = table.c[KEYS[obj]]
    columns = [table.c[c] for c in CORE[obj]]
    found: dict[str, dict[str, Any]] = {}
    for part in chunks([r.id for r in records]):
        query = sa.select(key, table.c.traits, *columns).where(
            table.c.workspace_id == workspace_id, key.in_(part))
        for row in session.execute(query):
            values = dict(row[1] or {})
            values.update(zip(CORE[obj], row[2:]))
            found[row[0]] = values
    return found


def _changes(obj: str, records: Iterable[Record], current: dict[str, dict[str, Any]],
             now: datetime) -> Iterator[dict[str, Any]]:
    for r in records:
        old = current.get(r.id)
        if old is None:
            continue
        given = {k: v for k, v in r.core.items() if k in CORE[obj]}
        given.update(r.attrs)
        for field, patch in given.items():
            before = old.get(field)
            after = patched(before, patch) if field not in CORE[obj] else patch
            if after != before:
                yield {"object": obj, "entity_id": r.id, "field": field,
                       "old_value": as_text(before), "new_value": as_text(after),
                       "changed_at": now}


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
