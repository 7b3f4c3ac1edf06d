"""Account and user lists: search, filter, sort and paginate in SQL, with their metrics.

A list sorted or filtered on dimensions only pages over the accounts (users) table and reads
metrics for the rows on the page alone. Sorting or filtering on a metric joins the current
metrics table (account_metrics / user_metrics, see summaries.py): one row per key, no GROUP BY
over the rollup; only the number of users per account is counted live from the users table.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterator

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from . import rollups
from ..models import Account, AccountMetrics, User, UserMetrics
from ..vocabulary import (ACCOUNT_METRICS, DATE_METRICS, DERIVED_METRICS, ID_FIELD,
                          USER_METRICS)
from ..ingest.writes import as_utc

OPERATORS = {"eq": "is", "ne": "is not", "contains": "contains", "gt": "greater than",
             "lt": "less than", "between": "in range"}
RANGE = ".."  # a range filter's value: "100000..250000" (low included, high not), as buckets
PER_PAGE = (25, 50, 100)
MAX_ACCOUNT_USERS = 2000  # ranked by activity on the account page; the rest are in /users


class BadFilter(ValueError):
    """A filter the list cannot apply; the message says why."""


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    value: str


@dataclass
class ListSpec:
    search: str = ""
    filters: list[Filter] = field(default_factory=list)
    sort: str = ""
    desc: bool = False
    page: int = 1
    per_page: int = PER_PAGE[0]


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


# --- what each list is made of --------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    """Everything that differs between the account list and the user list."""

    model: Any
    key: str
    core: tuple[str, ...]  # columns of their own, besides traits
    search: tuple[str, ...]
    default_sort: str
    metrics: tuple[str, ...]
    metrics_model: Any  # its current-metrics table
    date_metrics: tuple[str, ...] = DATE_METRICS

    @property
    def key_column(self) -> Any:
        return getattr(self.model, self.key)


def _trend(e30: Any, prev: Any) -> Any:
    return sa.case((prev > 0, (e30 - prev) * 100.0 / prev))


ACCOUNTS = Kind(
    model=Account, key=ID_FIELD["account"], core=("account_id", "name"),
    search=("name", "account_id"), default_sort="name",
    metrics=(*ACCOUNT_METRICS, *DERIVED_METRICS),
    metrics_model=AccountMetrics,
)

USERS = Kind(
    model=User, key=ID_FIELD["user"], core=("user_id", "email", "account_id"),
    search=("email", "user_id"), default_sort="email",
    metrics=(*USER_METRICS, *DERIVED_METRICS), metrics_model=UserMetrics,
)


# --- expressions ----------------------------------------------------------------------------

def dimension(kind: Kind, key: str, typ: str, bind: Any) -> Any:
    """A column or a JSON dimension as an SQL expression (numbers as numbers, safely)."""
    if key in kind.core:
        return getattr(kind.model, key)
    element = kind.model.traits[key]
    if typ != "NUMBER":
        return element.as_string()
    # Cast only JSON numbers: one odd value must not make PostgreSQL fail the whole query.
    if bind.dialect.name == "sqlite":
        kind_of = sa.func.json_type(kind.model.traits, sa.literal(f'$."{key}"'))
        return sa.case((kind_of.in_(["integer", "real"]), element.as_float()))
    return sa.case((sa.func.jsonb_typeof(kind.model.traits[key]) == "number",
                    element.as_float()))


def _number(value: str) -> float:
    try:
        return float(value.replace(",", "").strip())
    except ValueError:
        raise BadFilter(f"“{value}” is not a number") from None


def _range(value: str, numbers: bool) -> tuple[Any, Any]:
    low, sep, high = value.partition(RANGE)
    if not sep or not low.strip() or not high.strip():
        raise BadFilter(f"“{value}” is not a range (low{RANGE}high)")
    return (_number(low), _number(high)) if numbers else (low.strip(), high.strip())


def _compare(expr: Any, op: str, value: str, typ: str) -> Any:
    """`expr <op> value` for a dimension of catalog type `typ`."""
    if op == "between":
        low, high = _range(value, typ == "NUMBER")
        return sa.and_(expr >= low, expr < high)
    if op == "contains":
        return sa.cast(expr, sa.String).icontains(value, autoescape=True)
    if typ == "NUMBER":
        number = _number(value)
        return {"eq": expr == number, "ne": sa.or_(expr != number, expr.is_(None)),
                "gt": expr > number, "lt": expr < number}[op]
    if typ == "BOOLEAN" and op in ("eq", "ne"):
        truthy = value.strip().lower() in ("true", "yes", "1", "t", "y")
        test = expr.in_(["true", "1"]) if truthy else expr.in_(["false", "0"])
        return test if op == "eq" else sa.or_(sa.not_(test), expr.is_(None))
    text = sa.func.lower(expr)
    return {"eq": text == value.strip().lower(),
            "ne": sa.or_(text != value.strip().lower(), expr.is_(None)),
            "gt": expr > value.strip(), "lt": expr < value.strip()}[op]


def _metric_compare(expr: Any, name: str, op: str, value: str, kind: Kind) -> Any:
    if op == "contains":
        raise BadFilter("“contains” works on dimensions; use is, greater or less for metrics")
    if (score_field(name) or ("",))[0] == "tier":
        return _tier_compare(expr, op, value)
    if name in kind.date_metrics:
        return _date_compare(expr, op, value)
    if op == "between":
        low, high = _range(value, True)
        return sa.and_(expr >= low, expr < high)
    number = _number(value)
    return {"eq": expr == number, "ne": expr != number, "gt": expr > number,
            "lt": expr < number}[op]


def _tier_compare(expr: Any, op: str, value: str) -> Any:
    if op not in ("eq", "ne"):
        raise BadFilter("a tier is a name: use is or is not")
    same = sa.func.lower(expr) == value.strip().lower()
    return same if op == "eq" else sa.or_(sa.not_(same), expr.is_(None))


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise BadFilter(f"“{value}” is not a date (YYYY-MM-DD)") from None


def check_filter(kind: Kind, f: Filter, types: dict[str, str]) -> None:
    """Raise BadFilter, naming the problem, if the list cannot apply `f`."""
    if f.op not in OPERATORS:
        raise BadFilter(f"unknown operator {f.op!r}")
    if not known_field(kind, f.field, types):
        raise BadFilter(f"unknown field {f.field!r}")
    if score_field(f.field):
        if f.op == "contains" or (score_field(f.field)[0] == "tier" and f.op not in ("eq", "ne")):
            raise BadFilter("use is or is not for a tier, is, greater, less or in range for a "
                            "score")
        if score_field(f.field)[0] == "score":
            _range(f.value, True) if f.op == "between" else _number(f.value)
    elif f.field in kind.metrics:
        if f.op == "contains":
            raise BadFilter("“contains” works on dimensions; use is, greater or less for metrics")
        if f.op == "between" and f.field in kind.date_metrics:
            raise BadFilter("use greater or less than a date for “last seen”")
        if f.op == "between":
            _range(f.value, True)
        else:
            _day(f.value) if f.field in kind.date_metrics else _number(f.value)
    elif f.op == "between":
        _range(f.value, types.get(f.field) == "NUMBER")
    elif types.get(f.field) == "NUMBER" and f.op != "contains":
        _number(f.value)


def _date_compare(expr: Any, op: str, value: str) -> Any:
    """A timestamp against a UTC calendar day; "before" includes never."""
    day = _day(value)
    start = datetime.combine(day, time(), timezone.utc)
    end = start + timedelta(days=1)
    within = sa.and_(expr >= start, expr < end)
    return {"eq": within, "ne": sa.or_(sa.not_(within), expr.is_(None)), "gt": expr >= end,
            "lt": sa.or_(expr < start, expr.is_(None))}[op]


# Score columns: "score:<model id>" and "tier:<model id>", joined from score_values like metrics.
SCORE_FIELD = re.compile(r"^(score|tier):([0-9a-f]{1,32})$")


def score_field(key: str) -> tuple[str, str] | None:
    """("score" | "tier", model id) for a score column's key, else None."""
    found = SCORE_FIELD.match(key or "")
    return (found.group(1), found.group(2)) if found else None


def metric_like(kind: Kind, key: str) -> bool:
    """A column read from a joined table (metrics, scores), not from the record itself."""
    return key in kind.metrics or score_field(key) is not None


def usable_key(key: str) -> bool:
    """Keys that can be addressed inside JSON on both engines (SQLite paths are quoted)."""
    return bool(key) and '"' not in key and "\\" not in key


# --- the query ------------------------------------------------------------------------------

@dataclass
class Plan:
    """The parts of a list query: base filters, joined metric columns."""

    where: list[Any]
    metric_columns: dict[str, Any]
    joins: list[tuple[Any, Any]]


def _plan(kind: Kind, workspace_id: int, spec: ListSpec, types: dict[str, str],
          bind: Any) -> Plan:
    model = kind.model
    where = [model.workspace_id == workspace_id, model.archived_at.is_(None)]
    if spec.search.strip():
        term = spec.search.strip()
        where.append(sa.or_(*(getattr(model, c).icontains(term, autoescape=True)
                              for c in kind.search)))
    needed = {f.field for f in spec.filters if metric_like(kind, f.field)}
    if metric_like(kind, spec.sort):
        needed.add(spec.sort)
    metric_columns, joins = _metric_columns(kind, workspace_id, needed)
    for f in spec.filters:
        check_filter(kind, f, types)
        if metric_like(kind, f.field):
            where.append(_metric_compare(metric_columns[f.field], f.field, f.op, f.value, kind))
        else:
            typ = types.get(f.field, "STRING")
            where.append(_compare(dimension(kind, f.field, typ, bind), f.op, f.value, typ))
    return Plan(where, metric_columns, joins)


def _metric_columns(kind: Kind, workspace_id: int,
                    needed: set[str]) -> tuple[dict[str, Any], list[tuple[Any, Any]]]:
    columns: dict[str, Any] = {}
    joins: list[tuple[Any, Any]] = []
    _score_columns(kind, workspace_id, {k for k in needed if score_field(k)}, columns, joins)
    needed = {k for k in needed if not score_field(k)}
    stored = needed - {"users", "trend"}
    if "trend" in needed:
        stored |= {"events_30d", "events_prev_30d"}
    if stored:
        m = kind.metrics_model.__table__
        joins.append((m, sa.and_(m.c.workspace_id == workspace_id,
                                 m.c[kind.key] == kind.key_column)))
        for name in sorted(stored):
            columns[name] = m.c[name] if name == "last_seen" else sa.func.coalesce(m.c[name], 0)
        if "trend" in needed:
            columns["trend"] = _trend(columns["events_30d"], columns["events_prev_30d"])
    if "users" in needed:
        users = rollups.user_counts(workspace_id).subquery("u")
        joins.append((users, users.c.account_id == kind.key_column))
        columns["users"] = sa.func.coalesce(users.c.users, 0)
    return columns, joins


def _score_columns(kind: Kind, workspace_id: int, needed: set[str], columns: dict[str, Any],
                   joins: list[tuple[Any, Any]]) -> None:
    """One join of score_values per model a filter or the sort uses."""
    from ..scores.models import ScoreValue

    for model_id in sorted({score_field(k)[1] for k in needed}):
        v = ScoreValue.__table__.alias(f"score_{len(joins)}")
        joins.append((v, sa.and_(v.c.workspace_id == workspace_id, v.c.model_id == model_id,
                                 v.c.entity_id == kind.key_column)))
        columns[f"score:{model_id}"], columns[f"tier:{model_id}"] = v.c.score, v.c.tier


def known_field(kind: Kind, key: str, types: dict[str, str]) -> bool:
    return (key in kind.core or metric_like(kind, key)
            or (key in types and usable_key(key)))


def _order(kind: Kind, spec: ListSpec, plan: Plan, types: dict[str, str], bind: Any) -> list:
    sort = spec.sort if known_field(kind, spec.sort, types) else kind.default_sort
    if sort in plan.metric_columns:
        expr = plan.metric_columns[sort]
    else:
        expr = dimension(kind, sort, types.get(sort, "STRING"), bind)
        if sort not in kind.core and types.get(sort, "STRING") not in ("NUMBER", "BOOLEAN") \
                or sort == "name":
            expr = sa.func.lower(expr)  # people expect "acme" next to "Acme"
    ordered = expr.desc() if spec.desc else expr.asc()
    return [ordered.nulls_last(), kind.key_column.asc()]


def select_rows(kind: Kind, workspace_id: int, spec: ListSpec, types: dict[str, str],
                bind: Any) -> tuple[sa.Select, Plan]:
    """The filtered, sorted list as one SELECT (id, core columns, traits, metrics joined)."""
    plan = _plan(kind, workspace_id, spec, types, bind)
    columns = [getattr(kind.model, c) for c in kind.core] + [kind.model.traits]
    query = sa.select(*columns, *(c.label(n) for n, c in plan.metric_columns.items()))
    for target, on in plan.joins:
        query = query.outerjoin(target, on)
    query = query.where(*plan.where).order_by(*_order(kind, spec, plan, types, bind))
    return query, plan


def list_page(session: Session, kind: Kind, workspace_id: int, spec: ListSpec,
              types: dict[str, str]) -> Page:
    """One page of the list, each row with every metric of its kind."""
    query, plan = select_rows(kind, workspace_id, spec, types, session.connection())
    offset = (spec.page - 1) * spec.per_page
    if plan.joins:  # the aggregate is the expensive part: count in the same pass
        query = query.add_columns(sa.func.count().over().label("_total"))
    rows = [dict(r) for r in session.execute(query.limit(spec.per_page).offset(offset)).mappings()]
    if rows and plan.joins:
        total = rows[0]["_total"]
        for row in rows:
            row.pop("_total")
    elif not plan.joins:  # a plain count lets the database skip reading the rows
        total = session.scalar(sa.select(sa.func.count()).select_from(kind.model)
                               .where(*plan.where))
    else:  # past the last page: count the filtered list
        total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    _attach_metrics(session, kind, workspace_id, rows)
    return Page(rows, int(total), spec.page, spec.per_page)


def _attach_metrics(session: Session, kind: Kind, workspace_id: int, rows: list[dict]) -> None:
    """Every metric of the rows shown, read by key from the current-metrics table (plain rows:
    for a page of 25, building DataFrames would cost more than the queries)."""
    ids = [r[kind.key] for r in rows]
    if not ids:
        return
    m = kind.metrics_model
    names = [n for n in kind.metrics if n not in ("users", "trend")]
    key = getattr(m, kind.key)
    stored = {r[0]: r[1:] for r in session.execute(
        sa.select(key, *(getattr(m, n) for n in names))
        .where(m.workspace_id == workspace_id, key.in_(ids)))}
    users = dict(session.execute(rollups.user_counts(workspace_id, ids)).all()) \
        if "users" in kind.metrics else {}
    none = [None if n == "last_seen" else 0 for n in names]
    for row in rows:
        row.update(zip(names, stored.get(row[kind.key], none)))
        if row["last_seen"] is not None:
            row["last_seen"] = as_utc(row["last_seen"])
        if "users" in kind.metrics:
            row["users"] = users.get(row[kind.key], 0)
        row["trend"] = rollups.change_pct(row["events_30d"], row["events_prev_30d"])
    _attach_scores(session, kind, workspace_id, rows, ids)


def _attach_scores(session: Session, kind: Kind, workspace_id: int, rows: list[dict],
                   ids: list[str]) -> None:
    """Every score of the rows shown, as row["score:<model>"] and row["tier:<model>"]."""
    from ..scores.models import ScoreModel, ScoreValue

    v = ScoreValue
    found = session.execute(
        sa.select(v.entity_id, v.model_id, v.score, v.tier)
        .join(ScoreModel, sa.and_(ScoreModel.workspace_id == v.workspace_id,
                                  ScoreModel.id == v.model_id))
        .where(v.workspace_id == workspace_id, v.entity_id.in_(ids),
               ScoreModel.object == ("account" if kind.model is Account else "user"))).all()
    by_row = {row[kind.key]: row for row in rows}
    for entity_id, model_id, score, tier in found:
        by_row[entity_id][f"score:{model_id}"] = score
        by_row[entity_id][f"tier:{model_id}"] = tier


def _metric_values(frame: pd.DataFrame, key: str) -> dict[str, Any]:
    if key not in frame.index:
        return {c: (None if c == "last_seen" else 0) for c in frame.columns}
    values = frame.loc[key].to_dict()
    values["last_seen"] = None if pd.isna(values["last_seen"]) else values["last_seen"]
    return {k: (v if k == "last_seen" else int(v)) for k, v in values.items()}


def all_rows(session: Session, kind: Kind, workspace_id: int, spec: ListSpec,
             types: dict[str, str], chunk: int = 1000) -> Iterator[dict[str, Any]]:
    """Every row of the filtered list with all its metrics (for CSV export), in chunks."""
    full = ListSpec(spec.search, spec.filters, spec.sort, spec.desc)
    query, _plan_ = select_rows(kind, workspace_id, full, types, session.connection())
    offset = 0
    while True:
        rows = [dict(r) for r in session.execute(query.limit(chunk).offset(offset)).mappings()]
        if not rows:
            return
        _attach_metrics(session, kind, workspace_id, rows)
        yield from rows
        offset += chunk


def account_users(session: Session, workspace_id: int, account_id: str, limit: int = 50,
                  today: date | None = None, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """An account's live users, most active first, with their metrics; and how many there are."""
    # No ORDER BY: it would tempt SQLite onto the email index; the rows are ranked below.
    query = (sa.select(User.user_id, User.email, User.traits)
             .where(User.workspace_id == workspace_id, User.account_id == account_id,
                    User.archived_at.is_(None))
             .limit(MAX_ACCOUNT_USERS))
    rows = [dict(r) for r in session.execute(query).mappings()]
    total = len(rows)
    if total == MAX_ACCOUNT_USERS:
        total = session.scalar(sa.select(sa.func.count()).select_from(User).where(
            User.workspace_id == workspace_id, User.account_id == account_id,
            User.archived_at.is_(None)))
    activity = rollups.account_user_activity(session, workspace_id, account_id, today)
    for row in rows:
        row.update(_metric_values(activity, row["user_id"]))
    rows.sort(key=lambda r: (-r["events_30d"], -(r["last_seen"].timestamp() if r["last_seen"]
                                                  else 0), r["email"] or ""))
    return rows[offset:offset + limit], int(total)
