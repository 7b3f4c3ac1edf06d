"""Signal definitions: parsing and validating the JSON a caller sends into typed conditions.

Every problem is collected, each naming its condition (by index) or field, so one 422 answers
everything wrong with a definition. Validation needs the workspace's field catalog and its
other signals (for signal-of-signal conditions and their cycles).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Union

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..ingest import fields as catalog
from .models import CATEGORIES, Signal

OBJECTS = ("account", "user")
ID_FIELD = {"account": "account_id", "user": "user_id"}
MATCHES = ("all", "any")
MAX_WINDOW = 365
MAX_CONDITIONS = 20
# Dimension ops per field type (DATE and DATETIME also take within_days / more_than_days_ago).
TEXT_OPS = ("eq", "ne", "in", "not_in", "contains", "is_set", "is_not_set")
ORDER_OPS = ("gt", "gte", "lt", "lte", "between")
OPS_BY_TYPE = {
    "STRING": TEXT_OPS, "EMAIL": TEXT_OPS, "ENUM": TEXT_OPS,
    "NUMBER": ("eq", "ne", "in", "not_in", *ORDER_OPS, "is_set", "is_not_set"),
    "BOOLEAN": ("eq", "ne", "is_set", "is_not_set"),
    "DATE": ("eq", "ne", *ORDER_OPS, "within_days", "more_than_days_ago", "is_set", "is_not_set"),
    "OBJECT": ("is_set", "is_not_set"), "ARRAY": ("is_set", "is_not_set"),
}
OPS_BY_TYPE["DATETIME"] = OPS_BY_TYPE["DATE"]
METRICS = ("events", "active_users", "active_days", "days_since_last_seen", "sum")
METRIC_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")


@dataclass(frozen=True)
class Dimension:
    field: str
    type: str
    op: str
    value: Any = None
    core: bool = False  # a column of its own (name, email, account_id), not a trait


@dataclass(frozen=True)
class Metric:
    metric: str
    op: str
    value: Any
    window_days: int = 0
    offset_days: int = 0
    event: str | None = None
    property: str | None = None
    compare: str | None = None  # "previous": percent change against the window before


@dataclass(frozen=True)
class Change:
    field: str
    within_days: int
    changed_to: Any = None
    changed_from: Any = None
    core: bool = False


@dataclass(frozen=True)
class InSignal:
    signal: str
    op: str  # in | not_in


@dataclass(frozen=True)
class OnScore:
    """A score model's current score (`op`, `value`), its tier now (`tier`), or its tier
    `within_days` ago (`tier_was`: "dropped from A to C this week" with `tier`)."""

    score: str
    op: str | None = None
    value: Any = None
    tier: tuple[str, ...] | None = None
    tier_was: tuple[str, ...] | None = None
    within_days: int = 0


Condition = Union[Dimension, Metric, Change, InSignal, OnScore]


@dataclass
class Definition:
    name: str
    category: str
    object: str
    match: str
    conditions: list[Condition] = field(default_factory=list)
    raw: list[dict[str, Any]] = field(default_factory=list)


class DefinitionError(Exception):
    """A definition with problems: a list of {"condition": index | None, "field", "message"}."""

    def __init__(self, problems: list[dict[str, Any]]):
        super().__init__("; ".join(describe(p) for p in problems))
        self.problems = problems


def describe(problem: dict[str, Any]) -> str:
    where = (f"conditions[{problem['condition']}]" if problem.get("condition") is not None
             else problem.get("field", "body"))
    return f"{where}: {problem['message']}"


class _Problems(list):
    def add(self, index: int | None, message: str, name: str | None = None) -> None:
        self.append({"condition": index, "field": name, "message": message})


# --- parsing --------------------------------------------------------------------------------

def parse(session: Session, workspace_id: int, body: Any, signal_id: str | None = None,
          base: Signal | None = None) -> Definition:
    """The validated definition of `body` (merged over `base` for a PATCH), or DefinitionError."""
    problems = _Problems()
    if not isinstance(body, dict):
        raise DefinitionError([{"condition": None, "field": "body",
                                "message": "must be a JSON object"}])
    given = _merged(body, base)
    name = given.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 120:
        problems.add(None, "a name of 1 to 120 characters is required", "name")
    category = given.get("category", "other")
    if category not in CATEGORIES:
        problems.add(None, f"must be one of {', '.join(CATEGORIES)}", "category")
    obj = given.get("object", "account")
    if obj not in OBJECTS:
        problems.add(None, "must be account or user", "object")
        obj = "account"
    match = given.get("match", "all")
    if match not in MATCHES:
        problems.add(None, "must be all or any", "match")
    raw = given.get("conditions")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_CONDITIONS:
        problems.add(None, f"a list of 1 to {MAX_CONDITIONS} conditions is required", "conditions")
        raw = []
    known = catalog.load_catalog(session, workspace_id, obj)
    props = catalog.load_catalog(session, workspace_id, "event")
    conditions = [c for c in (_condition(session, workspace_id, obj, i, item, known, props,
                                         signal_id, problems)
                              for i, item in enumerate(raw)) if c is not None]
    if problems:
        raise DefinitionError(problems)
    return Definition(name.strip(), category, obj, match, conditions, raw)


def _merged(body: dict[str, Any], base: Signal | None) -> dict[str, Any]:
    if base is None:
        return body
    return {"name": base.name, "category": base.category, "object": base.object,
            "match": base.match, "conditions": base.conditions, **body}


def _condition(session: Session, workspace_id: int, obj: str, i: int, item: Any,
               known: dict, props: dict, signal_id: str | None,
               problems: _Problems) -> Condition | None:
    if not isinstance(item, dict):
        problems.add(i, "must be an object")
        return None
    if "signal" in item:
        return _in_signal(session, workspace_id, obj, i, item, signal_id, problems)
    if "score" in item:
        return _on_score(session, workspace_id, obj, i, item, signal_id, problems)
    if "metric" in item:
        return _metric(obj, i, item, props, problems)
    if any(k in item for k in ("changed_to", "changed_from", "changed")):
        return _change(obj, i, item, known, problems)
    if "field" in item:
        return _dimension(obj, i, item, known, problems)
    problems.add(i, "give a field (dimension or change), a metric, a signal or a score")
    return None


def _field(obj: str, i: int, name: Any, known: dict, problems: _Problems) -> tuple[str, str, bool] | None:
    """(key, type, is core column) of a field of `obj`, or a problem."""
    core = catalog.CORE[obj]
    if isinstance(name, str) and name in core and name != ID_FIELD[obj]:
        return name, core[name][1], True
    entry = known.get(name.lower()) if isinstance(name, str) else None
    if entry is None or entry.key in core:
        problems.add(i, f"unknown {obj} field {name!r}")
        return None
    return entry.key, entry.type, False


def _dimension(obj: str, i: int, item: dict, known: dict, problems: _Problems) -> Dimension | None:
    found = _field(obj, i, item.get("field"), known, problems)
    if found is None:
        return None
    key, typ, core = found
    op = item.get("op")
    allowed = OPS_BY_TYPE.get(typ, ("is_set", "is_not_set"))
    if op not in allowed:
        problems.add(i, f"op {op!r} does not fit {typ} field {key!r} (use {', '.join(allowed)})")
        return None
    value = item.get("value")
    problem = _value_problem(typ, op, value)
    if problem:
        problems.add(i, problem)
        return None
    return Dimension(key, typ, op, value, core)


def _value_problem(typ: str, op: str, value: Any) -> str | None:
    if op in ("is_set", "is_not_set"):
        return None
    if op in ("within_days", "more_than_days_ago"):
        return None if _whole(value, 1, 36500) else "value must be a whole number of days"
    values = value if op in ("in", "not_in", "between") else [value]
    if not isinstance(values, list) or not values:
        return f"value must be a non-empty list for {op}"
    if op == "between" and len(values) != 2:
        return "value must be [low, high] for between"
    check = {"NUMBER": _number, "BOOLEAN": lambda v: isinstance(v, bool),
             "DATE": _iso_date, "DATETIME": _iso_date}.get(typ, lambda v: isinstance(v, str))
    if not all(check(v) for v in values):
        return f"value must be {_kind(typ)} for a {typ} field"
    return None


def _kind(typ: str) -> str:
    return {"NUMBER": "a number", "BOOLEAN": "true or false",
            "DATE": "an ISO date (YYYY-MM-DD)", "DATETIME": "an ISO date (YYYY-MM-DD)"}.get(typ, "text")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _iso_date(value: Any) -> bool:
    try:
        date.fromisoformat(value[:10])
        return True
    except (TypeError, ValueError):
        return False


def _metric(obj: str, i: int, item: dict, props: dict, problems: _Problems) -> Metric | None:
    metric = item.get("metric")
    if metric not in METRICS:
        problems.add(i, f"unknown metric {metric!r} (use {', '.join(METRICS)})")
        return None
    if metric == "active_users" and obj != "account":
        problems.add(i, "active_users is a metric of accounts")
        return None
    before = len(problems)
    window = item.get("window_days", 0 if metric == "days_since_last_seen" else None)
    offset = item.get("offset_days", 0)
    compare = item.get("compare")
    if metric != "days_since_last_seen" and not _whole(window, 1, MAX_WINDOW):
        problems.add(i, f"window_days must be a whole number from 1 to {MAX_WINDOW}")
    if not _whole(offset, 0, MAX_WINDOW) or (metric == "days_since_last_seen" and offset):
        problems.add(i, f"offset_days must be a whole number from 0 to {MAX_WINDOW}"
                        " (and is not used with days_since_last_seen)")
    if compare not in (None, "previous") or (compare and metric == "days_since_last_seen"):
        problems.add(i, "compare must be \"previous\" (not with days_since_last_seen)")
    event = item.get("event")
    if event is not None and (not isinstance(event, str) or metric == "days_since_last_seen"):
        problems.add(i, "event must be an event name (not with days_since_last_seen)")
    prop = item.get("property")
    if metric == "sum":
        prop = _sum_property(i, event, prop, props, problems)
    elif prop is not None:
        problems.add(i, "property is used only with the sum metric")
    op, value = item.get("op"), item.get("value")
    _metric_value(i, op, value, problems)
    if len(problems) > before:
        return None
    return Metric(metric, op, value, window or 0, offset, event, prop, compare)


def _sum_property(i: int, event: Any, prop: Any, props: dict, problems: _Problems) -> str | None:
    if not isinstance(event, str):
        problems.add(i, "sum needs the event whose property it adds up")
    entry = props.get(prop.lower()) if isinstance(prop, str) else None
    if entry is None:
        problems.add(i, f"unknown event property {prop!r}")
        return None
    if entry.type != "NUMBER":
        problems.add(i, f"property {entry.key!r} is {entry.type}; sum needs a NUMBER property")
    return entry.key


def _metric_value(i: int, op: Any, value: Any, problems: _Problems) -> None:
    if op not in METRIC_OPS:
        problems.add(i, f"op {op!r} does not fit a metric (use {', '.join(METRIC_OPS)})")
    elif op == "between":
        if not (isinstance(value, list) and len(value) == 2 and all(map(_number, value))):
            problems.add(i, "value must be [low, high] numbers for between")
    elif not _number(value):
        problems.add(i, "value must be a number")


def _change(obj: str, i: int, item: dict, known: dict, problems: _Problems) -> Change | None:
    found = _field(obj, i, item.get("field"), known, problems)
    within = item.get("within_days")
    if not _whole(within, 1, MAX_WINDOW):
        problems.add(i, f"within_days must be a whole number from 1 to {MAX_WINDOW}")
        return None
    if "changed" in item and item["changed"] is not True:
        problems.add(i, "changed must be true (use changed_to / changed_from for values)")
        return None
    if found is None:
        return None
    return Change(found[0], within, item.get("changed_to"), item.get("changed_from"), found[2])


def _in_signal(session: Session, workspace_id: int, obj: str, i: int, item: dict,
               signal_id: str | None, problems: _Problems) -> InSignal | None:
    target, op = item.get("signal"), item.get("op", "in")
    if op not in ("in", "not_in"):
        problems.add(i, "op must be in or not_in for a signal condition")
        return None
    graph = dependencies(session, workspace_id)
    other = session.get(Signal, (workspace_id, target)) if isinstance(target, str) else None
    if other is None:
        problems.add(i, f"no signal with id {target!r}")
        return None
    if other.object != obj:
        problems.add(i, f"signal {other.name!r} is about {other.object}s, this one about {obj}s")
        return None
    if signal_id is not None and reaches(graph, target, signal_id):
        problems.add(i, f"signal {other.name!r} depends on this signal: a cycle")
        return None
    return InSignal(target, op)


def _tiers(value: Any) -> tuple[str, ...] | None:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        return None
    return tuple(values)


def _on_score(session: Session, workspace_id: int, obj: str, i: int, item: dict,
              signal_id: str | None, problems: _Problems) -> OnScore | None:
    from ..scores.models import ScoreModel, signals_used

    target = item.get("score")
    model = session.get(ScoreModel, (workspace_id, target)) if isinstance(target, str) else None
    if model is None:
        problems.add(i, f"no score with id {target!r}")
        return None
    if model.object != obj:
        problems.add(i, f"score {model.name!r} is about {model.object}s, this signal about {obj}s")
        return None
    if signal_id is not None:
        graph = dependencies(session, workspace_id)
        if any(reaches(graph, used, signal_id) for used in signals_used(model.inputs)):
            problems.add(i, f"score {model.name!r} uses this signal: a cycle")
            return None
    names = {t.get("name") for t in model.tiers or () if isinstance(t, dict)}
    tier = _tiers(item["tier"]) if "tier" in item else None
    was = _tiers(item["tier_was"]) if "tier_was" in item else None
    if ("tier" in item and tier is None) or ("tier_was" in item and was is None):
        problems.add(i, "tier and tier_was must be a tier name or a list of them")
        return None
    unknown = sorted((set(tier or ()) | set(was or ())) - names)
    if unknown:
        problems.add(i, f"score {model.name!r} has no tier {unknown[0]!r}")
        return None
    within = item.get("within_days", 0)
    if was is not None and not _whole(within, 1, MAX_WINDOW):
        problems.add(i, f"tier_was needs within_days, a whole number from 1 to {MAX_WINDOW}")
        return None
    if tier is None and was is None:
        before = len(problems)
        _metric_value(i, item.get("op"), item.get("value"), problems)
        if len(problems) > before:
            return None
        return OnScore(target, item["op"], item["value"])
    return OnScore(target, None, None, tier, was, within if was is not None else 0)


# --- the graph of signals -------------------------------------------------------------------

def dependencies(session: Session, workspace_id: int) -> dict[str, set[str]]:
    """signal id -> the ids of the signals it depends on: those its conditions use, and those
    the inputs of the scores it uses are members of."""
    from ..scores.models import ScoreModel, signals_used

    through = {mid: signals_used(inputs) for mid, inputs in session.execute(
        sa.select(ScoreModel.id, ScoreModel.inputs).where(ScoreModel.workspace_id == workspace_id))}
    rows = session.execute(sa.select(Signal.id, Signal.conditions)
                           .where(Signal.workspace_id == workspace_id))
    return {sid: uses(conditions).union(*(through.get(m, set()) for m in scores_in(conditions)))
            for sid, conditions in rows}


def uses(conditions: list[dict[str, Any]]) -> set[str]:
    return {c["signal"] for c in conditions or () if isinstance(c, dict) and "signal" in c}


def scores_in(conditions: list[dict[str, Any]]) -> set[str]:
    """The ids of the score models a signal's conditions use."""
    return {c["score"] for c in conditions or () if isinstance(c, dict) and "score" in c}


def scores_reached(session: Session, workspace_id: int, signal_id: str) -> set[str]:
    """The scores `signal_id` uses, directly or through the signals it depends on."""
    graph = dependencies(session, workspace_id)
    conditions = dict(session.execute(sa.select(Signal.id, Signal.conditions)
                                      .where(Signal.workspace_id == workspace_id)).all())
    return {m for sid in conditions if reaches(graph, signal_id, sid)
            for m in scores_in(conditions[sid])}


def reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    """Whether `goal` is `start` or one of the signals `start` depends on, transitively."""
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return False


def in_order(graph: dict[str, set[str]]) -> list[str]:
    """Signal ids with every signal after those it depends on."""
    out: list[str] = []
    done: set[str] = set()

    def visit(node: str, path: frozenset) -> None:
        if node in done or node in path:
            return
        for dep in sorted(graph.get(node, ())):
            visit(dep, path | {node})
        done.add(node)
        out.append(node)

    for node in sorted(graph):
        visit(node, frozenset())
    return out


# --- labels for the value snapshots ---------------------------------------------------------

def label(condition: Condition, names: dict[str, str] | None = None) -> str:
    """A short, stable name for what a condition measures (a key of the values snapshot)."""
    if isinstance(condition, Dimension):
        return condition.field
    if isinstance(condition, Change):
        return f"{condition.field} changed"
    if isinstance(condition, InSignal):
        return f"in {(names or {}).get(condition.signal, condition.signal)}"
    if isinstance(condition, OnScore):
        name = (names or {}).get(condition.score, condition.score)
        if condition.tier_was is not None:
            return f"{name} tier {condition.within_days}d ago"
        return f"{name} tier" if condition.tier is not None else name
    m = condition
    what = f"{m.metric}:{m.property}" if m.metric == "sum" else m.metric
    if m.event and m.metric != "sum":
        what += f":{m.event}"
    if m.metric == "days_since_last_seen":
        return what
    text = f"{what} {m.window_days}d" + (f" {m.offset_days}d ago" if m.offset_days else "")
    return text + (" change %" if m.compare else "")
