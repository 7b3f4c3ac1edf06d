"""An independent computation of signal membership in Python, from the raw tables (events,
accounts, users, dimension history, members): what the SQL evaluation must agree with."""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa

from correlated.models import Account, Event, User
from correlated.signals.models import DimensionChange, SignalMember


def utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def members(session, workspace_id: int, definition: dict, now: datetime) -> set[str]:
    obj = definition.get("object", "account")
    table = Account if obj == "account" else User
    key = "account_id" if obj == "account" else "user_id"
    entities = {getattr(e, key): e for e in session.scalars(sa.select(table).where(
        table.workspace_id == workspace_id, table.archived_at.is_(None)))}
    events = list(session.scalars(sa.select(Event).where(Event.workspace_id == workspace_id)))
    by_entity = defaultdict(list)
    for e in events:
        owner = getattr(e, key)
        if owner:
            by_entity[owner].append(e)
    changes = list(session.scalars(sa.select(DimensionChange).where(
        DimensionChange.workspace_id == workspace_id, DimensionChange.object == obj)))
    in_signal = defaultdict(set)
    for m in session.scalars(sa.select(SignalMember).where(
            SignalMember.workspace_id == workspace_id)):
        in_signal[m.signal_id].add(m.entity_id)
    today = now.date()
    out = set()
    for eid, entity in entities.items():
        tests = [_test(c, eid, entity, by_entity[eid], changes, in_signal, today, now)
                 for c in definition["conditions"]]
        if (all(tests) if definition.get("match", "all") == "all" else any(tests)):
            out.add(eid)
    return out


def _test(c, eid, entity, events, changes, in_signal, today, now) -> bool:
    if "signal" in c:
        inside = eid in in_signal[c["signal"]]
        return inside if c.get("op", "in") == "in" else not inside
    if "metric" in c:
        return _metric(c, events, today)
    if any(k in c for k in ("changed_to", "changed_from", "changed")):
        since = now - timedelta(days=c["within_days"])
        for ch in changes:
            if ch.entity_id != eid or ch.field != c["field"] or utc(ch.changed_at) < since:
                continue
            if "changed_to" in c and (ch.new_value is None or json.loads(ch.new_value) != c["changed_to"]):
                continue
            if "changed_from" in c and (ch.old_value is None or json.loads(ch.old_value) != c["changed_from"]):
                continue
            return True
        return False
    value = getattr(entity, c["field"]) if c["field"] in ("name", "email", "account_id") \
        else (entity.traits or {}).get(c["field"])
    return _dimension(c["op"], value, c.get("value"), today)


def _dimension(op, value, v, today) -> bool:
    if op == "is_set":
        return value is not None
    if op == "is_not_set":
        return value is None
    if op == "ne":
        return value is None or value != v
    if op == "not_in":
        return value is None or value not in v
    if value is None:
        return False
    if op == "within_days":
        return today - timedelta(days=v) <= date.fromisoformat(value[:10]) <= today
    if op == "more_than_days_ago":
        return date.fromisoformat(value[:10]) < today - timedelta(days=v)
    if isinstance(value, str) and isinstance(v, str) and len(v) >= 10 and v[4] == "-":
        value, v = value[:10], v[:10]
    return _compare(op, value, v)


def _compare(op, value, v) -> bool:
    if op == "contains":
        return v.lower() in value.lower()
    if op == "in":
        return value in v
    if op == "between":
        return v[0] <= value <= v[1]
    return {"eq": value == v, "ne": value != v, "gt": value > v, "gte": value >= v,
            "lt": value < v, "lte": value <= v}[op]


def _in(e, start: date, end: date, event: str | None) -> bool:
    return start <= utc(e.timestamp).date() <= end and (event is None or e.event == event)


def _amount(c, events, start, end):
    picked = [e for e in events if _in(e, start, end, c.get("event"))]
    metric = c["metric"]
    if metric == "events":
        return len(picked)
    if metric == "active_users":
        return len({e.user_id for e in picked if e.user_id})
    if metric == "active_days":
        return len({utc(e.timestamp).date() for e in picked})
    return sum(float((e.properties or {}).get(c["property"]) or 0) for e in picked)


def _metric(c, events, today) -> bool:
    if c["metric"] == "days_since_last_seen":
        if not events:
            return False
        value = (today - max(utc(e.timestamp) for e in events).date()).days
        return _compare(c["op"], value, c["value"])
    n, offset = c["window_days"], c.get("offset_days", 0)
    end = today - timedelta(days=offset)
    start = end - timedelta(days=n - 1)
    value = _amount(c, events, start, end)
    if c.get("compare") == "previous":
        before = _amount(c, events, start - timedelta(days=n), start - timedelta(days=1))
        if not before:
            return False
        value = (value - before) * 100.0 / before
    return _compare(c["op"], value, c["value"])
