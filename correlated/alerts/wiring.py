"""Plugs alerts into signals: transitions become outbox rows in the evaluation's transaction,
and the worker sends what is due."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..database import chunks
from ..models import Account, User


def on_transitions(session: Session, workspace_id: int, signal: Any, transitions: list) -> None:
    """`signals.TRANSITION_HOOKS` entry: one entity read for the whole evaluation, then enqueue."""
    from .rules import TransitionEvent, enqueue

    live = [t for t in transitions if not t.backfill]
    if not live:
        return
    profiles = _profiles(session, workspace_id, signal.object, {t.entity_id for t in live})
    events = [TransitionEvent(signal.object, t.entity_id, profiles.get(t.entity_id, ({}, None))[1],
                              t.kind, t.at, dict(t.values or {}), False,
                              profiles.get(t.entity_id, ({}, None))[0]) for t in live]
    enqueue(session, workspace_id, {"id": signal.id, "name": signal.name,
                                    "object": signal.object}, events)


def _profiles(session: Session, workspace_id: int, obj: str,
              ids: set[str]) -> dict[str, tuple[dict[str, Any], str | None]]:
    """entity ID -> (dimensions, display name), a query per thousand entities."""
    model = Account if obj == "account" else User
    key = model.account_id if obj == "account" else model.user_id
    label = model.name if obj == "account" else model.email
    out: dict[str, tuple[dict[str, Any], str | None]] = {}
    for part in chunks(sorted(ids), 1000):
        rows = session.execute(sa.select(key, label, model.traits).where(
            model.workspace_id == workspace_id, key.in_(part)))
        out.update({entity: (traits or {}, name) for entity, name, traits in rows})
    return out


def send_due(session: Session, now: Any) -> int:
    """`worker.JOBS` entry: deliver what the outbox holds that is due."""
    from .outbox import deliver_due

    return deliver_due(session, now)


def register() -> None:
    """Hook alerts into signal evaluation and the worker (once per process)."""
    from .. import worker
    from ..signals import TRANSITION_HOOKS

    if on_transitions not in TRANSITION_HOOKS:
        TRANSITION_HOOKS.append(on_transitions)
    if send_due not in worker.JOBS:
        worker.JOBS.append(send_due)
