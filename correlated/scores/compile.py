"""A score model as one SELECT over every account (or user) of a workspace.

Three layers, all SQL: `raw` (a CTE: each input's value per entity, from the signals' condition
machinery: the rollup in one grouped pass, the summaries, the entity's own columns), `pts` (each
input's points: its transform to 0..1, times its share of the weights, times 100; the
workspace-wide bounds of minmax inputs are aggregates over `raw`, percentiles by cume_dist), and
the result (entity_id, score, tier, each input's value and points). Never a query per entity.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import database
from ..models import User
from ..signals.compile import BASES, joined, json_object
from ..signals.definitions import Definition, Dimension, Metric
from .definitions import ActiveShare, Input, Model, Transform

EPSILON = 1e-9  # float sums of points: a score of 80 is in the tier "min 80"


def select(bind: Connection, workspace_id: int, model: Model, today: date,
           now: datetime) -> sa.Select:
    """SELECT entity_id, score, tier, contributions (JSON array, one {value, points} per input)
    and v0.., c0.. (each input's value and points) for every live entity."""
    raw = _raw(bind, workspace_id, model, today, now).cte("raw")
    total = model.total_weight
    # The minmax inputs' workspace-wide bounds, each computed once in a one-row subquery
    # joined to every entity: as scalar subqueries inlined in each CASE, PostgreSQL ran one
    # InitPlan (a cume_dist sort of `raw`) per occurrence, 108 for one model (~1 s at 10k).
    bounds = _bounds(raw, model)
    points = [sa.cast(sa.func.coalesce(_transform(bind, raw, bounds, i, item), 0.0) * (
        100.0 * item.weight / total), sa.Float).label(f"c{i}")
        for i, item in enumerate(model.inputs)]
    from_ = raw if bounds is None else raw.join(bounds, sa.true())
    pts = sa.select(raw.c.entity_id, *(raw.c[f"v{i}"] for i in range(len(model.inputs))),
                    *points).select_from(from_).subquery("pts")
    score = sum((pts.c[f"c{i}"] for i in range(len(model.inputs))), sa.literal(0.0))
    scored = sa.select(pts, sa.cast(score, sa.Float).label("score")).subquery("scored")
    contributions = json_array(bind, [json_object(bind, [("value", scored.c[f"v{i}"]),
                                                         ("points", scored.c[f"c{i}"])])
                                      for i in range(len(model.inputs))])
    return sa.select(scored.c.entity_id, scored.c.score,
                     tier_of(model, scored.c.score).label("tier"),
                     contributions.label("contributions"),
                     *(scored.c[f"v{i}"] for i in range(len(model.inputs))),
                     *(scored.c[f"c{i}"] for i in range(len(model.inputs))))


def tier_of(model: Model, score: Any) -> Any:
    """The name of the highest tier whose min the score reaches (NULL below every tier)."""
    if not model.tiers:
        return sa.null()
    return sa.case(*((score >= t.min - EPSILON, sa.literal(t.name)) for t in model.tiers),
                   else_=sa.null())


# --- the inputs' values ---------------------------------------------------------------------

def _raw(bind: Connection, workspace_id: int, model: Model, today: date,
         now: datetime) -> sa.Select:
    table, key_name, _ = BASES[model.object]
    key = table.c[key_name]
    sources = [Metric("active_users", "gte", 0, i.source.window_days)
               if isinstance(i.source, ActiveShare) else i.source for i in model.inputs]
    definition = Definition(model.name, "other", model.object, "all", sources)
    from_, values, _tests = joined(bind, workspace_id, definition, today, now)
    users = None
    if any(isinstance(i.source, ActiveShare) for i in model.inputs):
        users = _user_counts(workspace_id)
        from_ = from_.outerjoin(users, users.c.key == key)
    columns = [_value(bind, today, item, value, users).label(f"v{i}")
               for i, (item, value) in enumerate(zip(model.inputs, values))]
    return (sa.select(key.label("entity_id"), *columns).select_from(from_)
            .where(table.c.workspace_id == workspace_id, table.c.archived_at.is_(None)))


def _user_counts(workspace_id: int) -> Any:
    u = User.__table__
    return (sa.select(u.c.account_id.label("key"), sa.func.count().label("n"))
            .where(u.c.workspace_id == workspace_id, u.c.archived_at.is_(None),
                   u.c.account_id.is_not(None))
            .group_by(u.c.account_id).subquery("user_counts"))


def _value(bind: Connection, today: date, item: Input, value: Any, users: Any) -> Any:
    """The value an input's transform reads: numbers, days ago for dates, 1/0 for booleans."""
    if isinstance(item.source, ActiveShare):
        return sa.cast(value, sa.Float) / sa.func.nullif(users.c.n, 0)
    if item.kind == "date":
        return days_before(bind, today, value)
    if item.kind == "bool" and isinstance(item.source, Dimension):
        return sa.case((value.is_(None), sa.null()), (value, 1), else_=0)
    if item.kind == "number":
        return sa.cast(value, sa.Float)
    return value


def days_before(bind: Connection, today: date, day_text: Any) -> Any:
    """Whole days from a 'YYYY-MM-DD' text to `today` (negative in the future)."""
    if database.is_sqlite(bind):
        return sa.cast(sa.func.julianday(today.isoformat()) - sa.func.julianday(day_text),
                       sa.Float)
    return sa.cast(sa.cast(sa.literal(today, sa.Date), sa.Date) - sa.cast(day_text, sa.Date),
                   sa.Float)


# --- transforms -----------------------------------------------------------------------------

def _transform(bind: Connection, raw: Any, bounds: Any, i: int, item: Input) -> Any:
    """The input's value as 0..1 (NULL when the value is missing)."""
    v, t = raw.c[f"v{i}"], item.transform
    if t.type == "map":
        return sa.case((v.is_(None), sa.null()),
                       *((v == key, sa.literal(points)) for key, points in t.values),
                       else_=sa.literal(t.default))
    if t.type == "bool":
        return sa.case((v.is_(None), sa.null()), (v != 0, 1.0), else_=0.0)
    if t.type == "bands":
        return sa.case((v.is_(None), sa.null()),
                       *((v <= top, sa.literal(points)) for top, points in t.bands
                         if top is not None),
                       else_=sa.literal(next((p for top, p in t.bands if top is None), 0.0)))
    if t.type == "recency":
        return sa.case((v.is_(None), sa.null()), (v <= 0, 1.0), (v >= t.days, 0.0),
                       else_=1.0 - v / float(t.days))
    return _minmax(v, bounds.c[f"lo{i}"], bounds.c[f"hi{i}"], t)


def _minmax(v: Any, low: Any, high: Any, t: Transform) -> Any:
    clipped = sa.case((v < low, low), (v > high, high), else_=v)
    share = sa.case((high == low, 1.0), else_=(clipped - low) * 1.0 / (high - low))
    share = 1.0 - share if t.invert else share
    return sa.case((v.is_(None), sa.null()), else_=share)


def _bounds(raw: Any, model: Model) -> Any:
    """One row: lo<i>, hi<i> of each minmax input, one pass over `raw` per input (None when
    the model has none)."""
    parts = []
    for i, item in enumerate(model.inputs):
        if item.transform.type != "minmax":
            continue
        v, clip = raw.c[f"v{i}"], item.transform.clip
        if clip:
            # The smallest value at or above each percentile among the entities with a value
            # (the nearest rank: cume_dist is the share of values at or below each one).
            ranked = (sa.select(v.label("v"), sa.func.cume_dist().over(order_by=v).label("cd"))
                      .where(v.is_not(None)).subquery())
            low, high = (sa.func.min(sa.case((ranked.c.cd >= p / 100.0 - EPSILON, ranked.c.v)))
                         for p in clip)
        else:
            low, high = sa.func.min(v), sa.func.max(v)
        parts.append(sa.select(low.label(f"lo{i}"), high.label(f"hi{i}")).subquery(f"b{i}"))
    if not parts:
        return None
    joined_ = parts[0]
    for part in parts[1:]:
        joined_ = joined_.join(part, sa.true())
    return sa.select(*(c for part in parts for c in part.c)).select_from(joined_).subquery("bounds")


def json_array(bind: Connection, items: list[Any]) -> Any:
    if database.is_sqlite(bind):
        return sa.func.json_array(*items)
    return sa.func.jsonb_build_array(*items)
