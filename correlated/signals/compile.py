"""A signal definition as one SELECT over every account (or user) of a workspace.

The SELECT answers, per entity: `entity_id`, `matched` (the conditions combined with all/any)
and `vals` (a JSON object: each condition's label -> the value it looked at). Metrics over
windows come from the daily rollup in one grouped pass (conditional aggregates per window),
sums of an event property from the events table in one more, days since last seen from the
summaries; dimension changes and other signals are EXISTS subqueries. Never a query per entity.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import database
from ..analytics.summaries import sum_if
from ..ingest.history import as_text
from ..models import Account, AccountMetrics, DailyActivity, Event, User, UserMetrics
from .definitions import Change, Condition, Definition, Dimension, InSignal, Metric, OnScore, label
from .models import DimensionChange, SignalMember
from .pending import in_scope

ACT = DailyActivity
BASES = {"account": (Account.__table__, "account_id", AccountMetrics),
         "user": (User.__table__, "user_id", UserMetrics)}


@dataclass
class Window:
    start: date
    end: date


def windows(metric: Metric, today: date) -> tuple[Window, Window | None]:
    """The metric's window (ending `offset_days` before today) and, with compare, the one before."""
    end = today - timedelta(days=metric.offset_days)
    current = Window(end - timedelta(days=metric.window_days - 1), end)
    if metric.compare != "previous":
        return current, None
    return current, Window(current.start - timedelta(days=metric.window_days),
                           current.start - timedelta(days=1))


@dataclass
class _Query:
    bind: Connection
    workspace_id: int
    definition: Definition
    today: date
    now: datetime
    names: dict[str, str]
    only: sa.Select | None = None
    rollup: list[tuple[str, Any]] = field(default_factory=list)  # (column name, aggregate)
    sums: list[tuple[str, Any]] = field(default_factory=list)
    sum_events: set[str] = field(default_factory=set)
    starts: list[date] = field(default_factory=list)

    @property
    def obj(self) -> str:
        return self.definition.object


def select(bind: Connection, workspace_id: int, definition: Definition, today: date,
           now: datetime, names: dict[str, str] | None = None,
           only: sa.Select | None = None) -> sa.Select:
    """The SELECT (entity_id, matched, vals) of `definition` for every live entity (or those
    among the ids `only` selects)."""
    from_, values, tests = joined(bind, workspace_id, definition, today, now, names, only)
    table, key_name, _ = BASES[definition.object]
    key = table.c[key_name]
    combined = sa.and_(*tests) if definition.match == "all" else sa.or_(*tests)
    labels = _labels(definition.conditions, names or {})
    return (sa.select(key.label("entity_id"),
                      sa.case((combined, sa.true()), else_=sa.false()).label("matched"),
                      json_object(bind, zip(labels, values)).label("vals"))
            .select_from(from_)
            .where(table.c.workspace_id == workspace_id, table.c.archived_at.is_(None),
                   in_scope(key, only)))


def joined(bind: Connection, workspace_id: int, definition: Definition, today: date,
           now: datetime, names: dict[str, str] | None = None,
           only: sa.Select | None = None) -> tuple[Any, list[Any], list[Any]]:
    """(FROM clause over the entity table, each condition's value, each condition's test): the
    pieces of `select`, also used by scores for their inputs' values."""
    q = _Query(bind, workspace_id, definition, today, now, names or {}, only)
    table, key_name, metrics_model = BASES[q.obj]
    key = table.c[key_name]
    parts = [_condition(q, c, key, table) for c in definition.conditions]
    from_ = table
    rollup = _rollup(q)
    if rollup is not None:
        from_ = from_.outerjoin(rollup, rollup.c.key == key)
    sums = _sums(q)
    if sums is not None:
        from_ = from_.outerjoin(sums, sums.c.key == key)
    if any(isinstance(c, Metric) and c.metric == "days_since_last_seen"
           for c in definition.conditions):
        m = metrics_model.__table__
        from_ = from_.outerjoin(m, sa.and_(m.c.workspace_id == table.c.workspace_id,
                                           m.c[key_name] == key))
    values = [_resolve(v, rollup, sums, metrics_model) for v, _ in parts]
    tests = [_resolve(t, rollup, sums, metrics_model) for _, t in parts]
    return from_, values, tests


def _labels(conditions: list[Condition], names: dict[str, str]) -> list[str]:
    out: list[str] = []
    for c in conditions:
        text = label(c, names)
        out.append(text if text not in out else f"{text} #{len(out)}")
    return out


# Placeholders for columns of the subqueries, which exist only once every condition is seen.
@dataclass(frozen=True)
class _Col:
    source: str  # rollup | sums | metrics
    name: str


def _resolve(expr: Any, rollup: Any, sums: Any, metrics_model: Any) -> Any:
    return expr(rollup, sums, metrics_model.__table__) if callable(expr) else expr


def _condition(q: _Query, c: Condition, key: Any, table: sa.Table) -> tuple[Any, Any]:
    """(value expression, test expression) of one condition; either may be a callable taking
    the joined subqueries."""
    if isinstance(c, Dimension):
        value = _dimension_value(q, c, table)
        return value, _dimension_test(q, c, value)
    if isinstance(c, Change):
        found = sa.exists().where(*_change_filter(q, c, key))
        return _flag(found), found
    if isinstance(c, InSignal):
        member = sa.exists().where(SignalMember.workspace_id == q.workspace_id,
                                   SignalMember.signal_id == c.signal,
                                   SignalMember.entity_id == key)
        return _flag(member), member if c.op == "in" else ~member
    if isinstance(c, OnScore):
        return _on_score(q, c, key)
    return _metric(q, c)


def _on_score(q: _Query, c: OnScore, key: Any) -> tuple[Any, Any]:
    """The entity's stored score (or tier) as the value; its test (no score: false)."""
    from ..scores.models import ScoreHistory, ScoreValue

    v = ScoreValue
    of_entity = (v.workspace_id == q.workspace_id, v.model_id == c.score, v.entity_id == key)
    if c.tier is None and c.tier_was is None:
        score = sa.select(v.score).where(*of_entity).scalar_subquery()
        return score, _compare(score, c.op, c.value)
    tier = sa.select(v.tier).where(*of_entity).scalar_subquery()
    tests = [] if c.tier is None else [tier.in_(c.tier)]
    if c.tier_was is not None:
        h = ScoreHistory
        tests.append(sa.exists().where(h.workspace_id == q.workspace_id, h.model_id == c.score,
                                       h.entity_id == key,
                                       h.day == q.today - timedelta(days=c.within_days),
                                       h.tier.in_(c.tier_was)))
    return tier, sa.and_(*tests)


def _flag(test: Any) -> Any:
    """1 or 0 for the values snapshot (the same JSON number on both databases)."""
    return sa.case((test, sa.literal_column("1")), else_=sa.literal_column("0"))


# --- dimensions -----------------------------------------------------------------------------

def _dimension_value(q: _Query, c: Dimension, table: sa.Table) -> Any:
    if c.core:
        return table.c[c.field]
    element = table.c.traits[c.field]
    if c.type == "NUMBER":
        return element.as_float()
    if c.type == "BOOLEAN":
        return element.as_boolean()
    if c.type in ("DATE", "DATETIME"):
        return sa.func.substr(element.as_string(), 1, 10)
    return element.as_string()


def _dimension_test(q: _Query, c: Dimension, value: Any) -> Any:
    v = c.value
    if c.type in ("DATE", "DATETIME") and c.op not in ("within_days", "more_than_days_ago"):
        v = [x[:10] for x in v] if isinstance(v, list) else (v[:10] if isinstance(v, str) else v)
    op = c.op
    if op == "is_set":
        return value.is_not(None)
    if op == "is_not_set":
        return value.is_(None)
    if op == "within_days":
        return value.between((q.today - timedelta(days=v)).isoformat(), q.today.isoformat())
    if op == "more_than_days_ago":
        return value < (q.today - timedelta(days=v)).isoformat()
    if op == "contains":
        return sa.func.lower(value).contains(v.lower(), autoescape=True)
    if op in ("ne", "not_in"):  # "is not" includes entities where the dimension is not set
        differs = value != v if op == "ne" else value.not_in(v)
        return sa.or_(value.is_(None), differs)
    return {"eq": lambda: value == v, "in": lambda: value.in_(v), "gt": lambda: value > v,
            "gte": lambda: value >= v, "lt": lambda: value < v, "lte": lambda: value <= v,
            "between": lambda: value.between(v[0], v[1])}[op]()


def _change_filter(q: _Query, c: Change, key: Any) -> list[Any]:
    d = DimensionChange
    where = [d.workspace_id == q.workspace_id, d.object == q.obj, d.entity_id == key,
             d.field == c.field, d.changed_at >= q.now - timedelta(days=c.within_days)]
    if c.changed_to is not None:
        where.append(d.new_value == as_text(c.changed_to))
    if c.changed_from is not None:
        where.append(d.old_value == as_text(c.changed_from))
    return where


# --- metrics --------------------------------------------------------------------------------

def _metric(q: _Query, c: Metric) -> tuple[Any, Any]:
    if c.metric == "days_since_last_seen":
        value = (lambda r, s, m: days_since(q.bind, q.today, m.c.last_seen))
    else:
        current, previous = windows(c, q.today)
        now = _aggregate(q, c, current)
        if previous is None:
            value = (lambda r, s, m: sa.func.coalesce(now(r, s), 0))
        else:
            before = _aggregate(q, c, previous)
            value = (lambda r, s, m: (sa.func.coalesce(now(r, s), 0) - before(r, s)) * 100.0
                     / sa.func.nullif(sa.func.coalesce(before(r, s), 0), 0))
    return value, (lambda r, s, m: _compare(value(r, s, m), c.op, c.value))


def _compare(value: Any, op: str, v: Any) -> Any:
    return {"eq": lambda: value == v, "ne": lambda: value != v, "gt": lambda: value > v,
            "gte": lambda: value >= v, "lt": lambda: value < v, "lte": lambda: value <= v,
            "between": lambda: value.between(v[0], v[1])}[op]()


def _aggregate(q: _Query, c: Metric, w: Window):
    """Register one aggregate column for `c` over `w`; returns a getter of that column."""
    if c.metric == "sum":
        name = f"s{len(q.sums)}"
        ts_day = database.day(q.bind, Event.timestamp)
        q.sums.append((name, sum_if(sa.and_(Event.event == c.event, ts_day.between(w.start, w.end)),
                                    Event.properties[c.property].as_float())))
        q.sum_events.add(c.event)
        q.starts.append(w.start)
        return lambda r, s: s.c[name]
    name = f"r{len(q.rollup)}"
    in_window = [ACT.day.between(w.start, w.end)] + ([ACT.event == c.event] if c.event else [])
    cond = sa.and_(*in_window)
    if c.metric == "events":
        agg = sum_if(cond, ACT.count)
    elif c.metric == "active_users":
        agg = sa.func.count(sa.distinct(sa.case((sa.and_(cond, ACT.user_id != ""), ACT.user_id))))
    else:  # active_days
        agg = sa.func.count(sa.distinct(sa.case((cond, ACT.day))))
    q.rollup.append((name, agg))
    q.starts.append(w.start)
    return lambda r, s: r.c[name]


def _rollup(q: _Query) -> Any:
    if not q.rollup:
        return None
    key = ACT.account_id if q.obj == "account" else ACT.user_id
    return (sa.select(key.label("key"), *(agg.label(name) for name, agg in q.rollup))
            .where(ACT.workspace_id == q.workspace_id, key != "", in_scope(key, q.only),
                   ACT.day.between(min(q.starts), q.today))
            .group_by(key).subquery("rollup"))


def _sums(q: _Query) -> Any:
    if not q.sums:
        return None
    key = Event.account_id if q.obj == "account" else Event.user_id
    first = min(q.starts)
    return (sa.select(key.label("key"), *(agg.label(name) for name, agg in q.sums))
            .where(Event.workspace_id == q.workspace_id, key.is_not(None), in_scope(key, q.only),
                   Event.event.in_(sorted(q.sum_events)),
                   Event.timestamp >= datetime(first.year, first.month, first.day,
                                               tzinfo=q.now.tzinfo))
            .group_by(key).subquery("sums"))


# --- the few SQL pieces that differ -----------------------------------------------------------

def days_since(bind: Connection, today: date, timestamp: Any) -> Any:
    """Whole days from a timestamp's UTC day to `today` (NULL when the timestamp is)."""
    day = database.day(bind, timestamp)
    if database.is_sqlite(bind):
        return sa.cast(sa.func.julianday(today.isoformat()) - sa.func.julianday(day), sa.Integer)
    return sa.cast(sa.literal(today, sa.Date), sa.Date) - day


def json_object(bind: Connection, pairs: Any) -> Any:
    """A JSON object built in SQL from (key, expression) pairs."""
    # Typed keys: PostgreSQL cannot infer a parameter's type inside jsonb_build_object(...).
    args = [a for k, v in pairs for a in (sa.cast(sa.literal(k), sa.Text), v)]
    if database.is_sqlite(bind):
        return sa.func.json_object(*args)
    return sa.func.jsonb_build_object(*args)


def empty_json(bind: Connection) -> Any:
    return sa.literal("{}") if database.is_sqlite(bind) else sa.literal_column("'{}'::jsonb")
