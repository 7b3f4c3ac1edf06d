"""Incremental evaluation: which accounts and users a signal must look at again.

Each summaries refresh takes the stale marks that ingest wrote (accounts and users whose
rollup rows or dimensions changed) and keeps them here with its time, in its own transaction
(`keep`, a refresh hook). A signal last evaluated for the inputs of refresh S, now due for
refresh U, evaluates only the keys kept in (S, U], plus the entities whose membership of a
signal it uses changed since. Everything else (never evaluated, edited, a new day: windows
move for everyone, a full refresh) is a full evaluation. Keys are dropped once every signal of
the workspace has evaluated past them.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..ingest.writes import as_utc as as_aware
from .models import PendingKey, Signal, Transition

EVERY = ""  # the key of a full refresh: every entity changed


def keep(session: Session, workspace_id: int, keys: dict[str, set[str]],
         full: dict[str, bool], at: datetime) -> None:
    """Keep the accounts and users a refresh took (only where signals will read them)."""
    rows = [{"workspace_id": workspace_id, "at": at, "kind": kind, "key": key}
            for kind in ("account", "user")
            for key in sorted({EVERY} if full[kind] else keys[kind])]
    if rows and session.scalar(sa.select(sa.exists().where(Signal.workspace_id == workspace_id))):
        session.execute(sa.insert(PendingKey.__table__), rows)


def scope(session: Session, signal: Signal, inputs: datetime | None,
          today: date) -> sa.Select | None:
    """The ids an evaluation of `signal` for `inputs` must look at; None: every entity."""
    if (signal.evaluated_at is None or signal.inputs_at is None or inputs is None
            or as_aware(signal.updated_at) > as_aware(signal.evaluated_at)
            or as_aware(signal.evaluated_at).date() < today
            or scores_used(signal)):  # a recomputed score may move any entity: look at all
        return None
    p = PendingKey
    kept = (p.workspace_id == signal.workspace_id, p.kind == signal.object,
            p.at > signal.inputs_at, p.at <= inputs)
    if session.scalar(sa.select(sa.exists().where(*kept, p.key == EVERY))):
        return None
    keys = sa.select(p.key.label("key")).where(*kept)
    uses = sorted(uses_of(signal))
    if uses:  # the entities entering or leaving a signal it uses since it last looked
        t = Transition
        keys = keys.union(sa.select(t.entity_id).where(
            t.workspace_id == signal.workspace_id, t.signal_id.in_(uses),
            t.at >= signal.evaluated_at))
    return keys


def forget(session: Session, workspace_id: int) -> None:
    """Drop the keys every signal of the workspace has evaluated past."""
    oldest = (sa.select(sa.func.min(Signal.inputs_at))
              .where(Signal.workspace_id == workspace_id).scalar_subquery())
    session.execute(sa.delete(PendingKey).where(PendingKey.workspace_id == workspace_id,
                                                PendingKey.at <= oldest))


def uses_of(signal: Signal) -> set[str]:
    """The ids of the signals `signal`'s conditions use."""
    return {c["signal"] for c in signal.conditions or () if isinstance(c, dict) and "signal" in c}


def scores_used(signal: Signal) -> set[str]:
    """The ids of the score models `signal`'s conditions use."""
    return {c["score"] for c in signal.conditions or () if isinstance(c, dict) and "score" in c}


def in_scope(column: Any, only: sa.Select | None) -> Any:
    """`column` among the scope's ids (true when the evaluation is full)."""
    return sa.true() if only is None else column.in_(only)
