"""An independent computation of scores in Python, from the raw tables (accounts, users,
events, signal members): what the SQL computation must agree with."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from correlated.models import Account, Event, User
from correlated.signals.models import SignalMember

from ..signals.reference import _amount, utc

EPSILON = 1e-9


def scores(session, workspace_id: int, model: dict, now: datetime) -> dict[str, dict]:
    """entity id -> {"score", "tier", "points": [...], "values": [...]}."""
    accounts = {a.account_id: a for a in session.scalars(sa.select(Account).where(
        Account.workspace_id == workspace_id, Account.archived_at.is_(None)))}
    users = defaultdict(int)
    for u in session.scalars(sa.select(User).where(User.workspace_id == workspace_id,
                                                   User.archived_at.is_(None))):
        if u.account_id:
            users[u.account_id] += 1
    events = defaultdict(list)
    for e in session.scalars(sa.select(Event).where(Event.workspace_id == workspace_id)):
        if e.account_id:
            events[e.account_id].append(e)
    members = defaultdict(set)
    for m in session.scalars(sa.select(SignalMember).where(
            SignalMember.workspace_id == workspace_id)):
        members[m.signal_id].add(m.entity_id)
    today = now.date()
    inputs = model["inputs"]
    values = {aid: [_value(item["source"], a, events[aid], users[aid], members, today)
                    for item in inputs] for aid, a in accounts.items()}
    columns = [[values[aid][i] for aid in values] for i in range(len(inputs))]
    points = {aid: [_transform(item["transform"], v[i], columns[i])
                    for i, item in enumerate(inputs)] for aid, v in values.items()}
    total = sum(item.get("weight", 1) for item in inputs)
    out = {}
    for aid, p in points.items():
        parts = [100.0 * item.get("weight", 1) * (x or 0) / total for item, x in zip(inputs, p)]
        score = sum(parts)
        out[aid] = {"score": score, "tier": _tier(model.get("tiers", []), score),
                    "points": parts, "values": values[aid]}
    return out


def _tier(tiers: list[dict], score: float) -> str | None:
    for t in sorted(tiers, key=lambda t: -t["min"]):
        if score >= t["min"] - EPSILON:
            return t["name"]
    return None


def _value(source: dict, account, events, n_users: int, members, today: date):
    if "signal" in source:
        return 1 if account.account_id in members[source["signal"]] else 0
    if source.get("metric") == "active_user_share":
        start = today - timedelta(days=source.get("window_days", 30) - 1)
        active = _amount({"metric": "active_users"}, events, start, today)
        return active / n_users if n_users else None
    if "metric" in source:
        return _metric(source, events, today)
    field = source["field"]
    value = getattr(account, field) if field in ("name", "domain") \
        else (account.traits or {}).get(field)
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, str) and len(value) >= 10 and value[4] == "-" and value[7] == "-":
        return (today - date.fromisoformat(value[:10])).days
    return value


def _metric(c: dict, events, today: date):
    if c["metric"] == "days_since_last_seen":
        if not events:
            return None
        return (today - max(utc(e.timestamp) for e in events).date()).days
    n, offset = c["window_days"], c.get("offset_days", 0)
    end = today - timedelta(days=offset)
    start = end - timedelta(days=n - 1)
    value = _amount(c, events, start, end)
    if c.get("compare") == "previous":
        before = _amount(c, events, start - timedelta(days=n), start - timedelta(days=1))
        return (value - before) * 100.0 / before if before else None
    return value


def _percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile: the smallest value with at least p% of values at or below."""
    ordered = sorted(values)
    for v in ordered:
        if sum(1 for x in ordered if x <= v) / len(ordered) >= p / 100.0 - EPSILON:
            return v
    return ordered[-1]


def _transform(t: dict, v, column: list):
    if v is None:
        return None
    t = {"type": t} if isinstance(t, str) else t
    kind = t["type"]
    if kind == "map":
        return t["values"].get(v, t.get("default", 0))
    if kind == "bool":
        return 1.0 if v else 0.0
    if kind == "bands":
        for band in t["bands"]:
            if "max" not in band or v <= band["max"]:
                return band["points"]
        return 0.0
    if kind == "recency":
        return max(0.0, min(1.0, 1 - v / t["days"]))
    present = [x for x in column if x is not None]
    low, high = ((_percentile(present, t["clip"][0]), _percentile(present, t["clip"][1]))
                 if t.get("clip") else (min(present), max(present)))
    share = 1.0 if high == low else (min(max(v, low), high) - low) / (high - low)
    return 1 - share if t.get("invert") else share
