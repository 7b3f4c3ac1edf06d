"""Signals as a service: create, change, delete, preview, and read members and history.

Takes the session and the workspace id; never commits (the caller's unit of work does).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..models import utcnow
from .compile import select
from .definitions import Definition, parse
from .evaluate import names_of
from .models import Signal, SignalMember, Transition

PREVIEW_SAMPLE = 20


def create(session: Session, workspace_id: int, body: Any) -> Signal:
    """A new signal from a definition (DefinitionError when it is not valid); evaluated, as a
    back-fill, by the worker or `evaluate.run`."""
    d = parse(session, workspace_id, body)
    signal = Signal(workspace_id=workspace_id, name=d.name, category=d.category, object=d.object,
                    match=d.match, conditions=d.raw)
    session.add(signal)
    session.flush()
    return signal


def update(session: Session, signal: Signal, body: Any) -> Signal:
    """Apply a partial definition. A changed definition is back-filled again: the members it
    gains or loses at once are not "entered" or "exited" today."""
    d = parse(session, signal.workspace_id, body, signal_id=signal.id, base=signal)
    defining = (d.object, d.match, d.raw) != (signal.object, signal.match, signal.conditions)
    signal.name, signal.category = d.name, d.category
    signal.object, signal.match, signal.conditions = d.object, d.match, d.raw
    signal.updated_at = utcnow()
    if defining:
        signal.evaluated_at = None
    session.flush()
    return signal


def delete(session: Session, signal: Signal) -> None:
    """Remove a signal with its members and history (signals using it are refused first)."""
    t, m = Transition.__table__, SignalMember.__table__
    for table in (t, m):
        session.execute(sa.delete(table).where(table.c.workspace_id == signal.workspace_id,
                                               table.c.signal_id == signal.id))
    session.delete(signal)
    session.flush()


def users_of(session: Session, signal: Signal) -> list[Any]:
    """The signals whose conditions use `signal`, and the score models with it as an input."""
    from ..scores.models import ScoreModel, signals_used

    others = session.scalars(sa.select(Signal).where(Signal.workspace_id == signal.workspace_id,
                                                     Signal.id != signal.id))
    scores = session.scalars(sa.select(ScoreModel).where(
        ScoreModel.workspace_id == signal.workspace_id))
    return [s for s in others if any(isinstance(c, dict) and c.get("signal") == signal.id
                                     for c in s.conditions or ())] + [
        m for m in scores if signal.id in signals_used(m.inputs)]


def preview(session: Session, workspace_id: int, definition: Definition,
            now: datetime | None = None) -> dict[str, Any]:
    """How many entities match now, and a sample of them with their values (nothing saved)."""
    now = now or utcnow()
    query = select(session.connection(), workspace_id, definition, now.date(), now,
                   names_of(session, workspace_id)).subquery("q")
    matched = query.c.matched == sa.true()
    count = session.scalar(sa.select(sa.func.count()).select_from(query).where(matched))
    rows = session.execute(sa.select(query.c.entity_id, query.c.vals).where(matched)
                           .order_by(query.c.entity_id).limit(PREVIEW_SAMPLE)).all()
    return {"count": count, "sample": [{"id": r[0], "values": _json(r[1])} for r in rows]}


def _json(value: Any) -> dict[str, Any]:
    """The values object as read back from a raw SELECT (SQLite gives its JSON text)."""
    if isinstance(value, str):
        import json

        return json.loads(value)
    return dict(value or {})


def of_workspace(session: Session, workspace_id: int) -> list[Signal]:
    return list(session.scalars(sa.select(Signal).where(Signal.workspace_id == workspace_id)
                                .order_by(Signal.name, Signal.id)))


def counts(session: Session, workspace_id: int, days: int = 7,
           now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Per signal: members now, and entered and exited in the last `days` (no back-fill)."""
    since = (now or utcnow()) - timedelta(days=days)
    members = dict(session.execute(
        sa.select(SignalMember.signal_id, sa.func.count())
        .where(SignalMember.workspace_id == workspace_id).group_by(SignalMember.signal_id)).all())
    t = Transition
    moves = session.execute(
        sa.select(t.signal_id, t.kind, sa.func.count())
        .where(t.workspace_id == workspace_id, t.at >= since, t.backfill.is_(False))
        .group_by(t.signal_id, t.kind)).all()
    out: dict[str, dict[str, int]] = {}
    for sid in {*members, *(r[0] for r in moves)}:
        out[sid] = {"members": members.get(sid, 0), "entered": 0, "exited": 0}
    for sid, kind, n in moves:
        out[sid][kind] = n
    return out


def members_per_day(session: Session, workspace_id: int, signal_ids: list[str], days: int = 30,
                    today: date | None = None) -> dict[str, list[int]]:
    """Members at the end of each of the last `days` days, per signal, from the history: the
    members now, walked back through each day's entries and exits."""
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    current = counts(session, workspace_id, now=utcnow())
    t = Transition
    day = sa.func.date(t.at) if session.get_bind().dialect.name == "sqlite" else sa.cast(
        sa.func.timezone("UTC", t.at), sa.Date)
    rows = session.execute(
        sa.select(t.signal_id, day.label("day"),
                  sa.func.sum(sa.case((t.kind == "entered", 1), else_=-1)))
        .where(t.workspace_id == workspace_id, t.signal_id.in_(signal_ids),
               t.at >= datetime(first.year, first.month, first.day, tzinfo=timezone.utc))
        .group_by(t.signal_id, day)).all()
    net: dict[tuple[str, str], int] = {(sid, str(d)): int(n) for sid, d, n in rows}
    out = {}
    for sid in signal_ids:
        level, series = current.get(sid, {}).get("members", 0), []
        for offset in range(days):
            d = today - timedelta(days=offset)
            series.append(level)
            level -= net.get((sid, d.isoformat()), 0)
        out[sid] = list(reversed(series))
    return out


def signals_of(session: Session, workspace_id: int, entity_id: str,
               obj: str) -> list[dict[str, Any]]:
    """The signals an account or user is in now, with when it entered and why."""
    rows = session.execute(
        sa.select(Signal.id, Signal.name, Signal.category, SignalMember.entered_at,
                  SignalMember.backfill, SignalMember.values)
        .join(SignalMember, sa.and_(SignalMember.workspace_id == Signal.workspace_id,
                                    SignalMember.signal_id == Signal.id))
        .where(Signal.workspace_id == workspace_id, Signal.object == obj,
               SignalMember.entity_id == entity_id)
        .order_by(Signal.name)).all()
    return [{"id": r[0], "name": r[1], "category": r[2], "entered_at": r[3],
             "already_in": r[4], "values": r[5]} for r in rows]


def timeline(session: Session, workspace_id: int, entity_id: str, obj: str,
             limit: int = 50) -> list[dict[str, Any]]:
    """An entity's entries into and exits from signals, newest first."""
    t = Transition
    rows = session.execute(
        sa.select(t.at, t.kind, t.backfill, t.values, Signal.id, Signal.name)
        .join(Signal, sa.and_(Signal.workspace_id == t.workspace_id, Signal.id == t.signal_id))
        .where(t.workspace_id == workspace_id, t.entity_id == entity_id, Signal.object == obj)
        .order_by(t.at.desc(), t.id.desc()).limit(limit)).all()
    return [{"at": r[0], "kind": r[1], "backfill": r[2], "values": r[3], "signal_id": r[4],
             "signal": r[5]} for r in rows]
