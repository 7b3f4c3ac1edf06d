"""Data flowing out: what the account and user lists add for reverse-ETL pulls and scripts.

- `include=` blocks (`metrics`, `signals`; a feature such as scores registers its own with
  `register_include`), in JSON and as CSV columns;
- the change time `updated_since=` compares and the lists show as `updated_at`: the latest of
  the record's own change (a sync), its metrics' refresh and its signal transitions (and every
  source a feature adds with `register_change_source`), so an incremental pull sees a record
  whose metrics, signals or scores moved even though no sync touched it.

Reads only, and set-based: one query per source for a whole page (or CSV chunk).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..database import chunks
from ..errors import ApiError
from ..models import AccountMetrics, UserMetrics, utcnow
from ..signals.models import Signal, SignalMember, Transition
from ..vocabulary import ID_FIELD

# A source of change times: (workspace_id, object) -> SELECT (entity_id, at), one row or more
# per entity (the latest counts).
ChangeSource = Callable[[int, str], sa.Select]
# Columns one include adds to a CSV row: (header, cell of the included value).
CsvColumns = list[tuple[str, Callable[[Any], Any]]]
# Writes that started before a pull but commit after it carry an earlier time than the pull;
# the next pull starts this much before the previous one began, so it sees them (rows may be
# sent twice, never missed).
OVERLAP = timedelta(minutes=5)


@dataclass(frozen=True)
class Include:
    """One `include=` block: `load` maps IDs to their values, `csv` flattens one value."""

    load: Callable[[Session, int, Sequence[str]], dict[str, Any]]
    csv: Callable[[Session, int], CsvColumns]


INCLUDES: dict[str, dict[str, Include]] = {"account": {}, "user": {}}
CHANGE_SOURCES: dict[str, list[ChangeSource]] = {"account": [], "user": []}


def register_include(obj: str, name: str, include: Include) -> None:
    """Offer `include=<name>` on the `obj` list (scores, for example)."""
    INCLUDES[obj][name] = include


def register_change_source(obj: str, source: ChangeSource) -> None:
    """Let `source` move the `updated_at` of `obj` records (idempotent)."""
    if source not in CHANGE_SOURCES[obj]:
        CHANGE_SOURCES[obj].append(source)


# --- include= -------------------------------------------------------------------------------

def parse_include(obj: str, value: str | None) -> list[str]:
    """The names in `include=a,b` (in the order given), or a 400 naming the unknown ones."""
    names = [n.strip() for n in (value or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in INCLUDES[obj]]
    if unknown:
        known = ", ".join(sorted(INCLUDES[obj])) or "none"
        message = f"include: {', '.join(map(repr, unknown))} not available (choose from {known})"
        raise ApiError(400, message, fields={"include": [message]})
    return list(dict.fromkeys(names))


def included(session: Session, workspace_id: int, obj: str, names: Iterable[str],
             ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{name: {id: value}} of every requested include, for a page of IDs."""
    return {name: INCLUDES[obj][name].load(session, workspace_id, ids) for name in names}


def csv_columns(session: Session, workspace_id: int, obj: str,
                names: Iterable[str]) -> list[tuple[str, str, Callable[[Any], Any]]]:
    """(include, header, cell) of every CSV column the requested includes add."""
    return [(name, header, cell) for name in names
            for header, cell in INCLUDES[obj][name].csv(session, workspace_id)]


# --- updated_at -----------------------------------------------------------------------------

def _metrics_changes(model: Any, key: str) -> ChangeSource:
    def source(workspace_id: int, obj: str) -> sa.Select:
        return sa.select(getattr(model, key).label("entity_id"), model.updated_at.label("at")) \
            .where(model.workspace_id == workspace_id, model.updated_at.is_not(None))
    return source


def _transition_changes(workspace_id: int, obj: str) -> sa.Select:
    """Entering or leaving a signal of this object (IDs of accounts and users may coincide)."""
    return (sa.select(Transition.entity_id.label("entity_id"), Transition.at.label("at"))
            .join(Signal, sa.and_(Signal.workspace_id == Transition.workspace_id,
                                  Signal.id == Transition.signal_id))
            .where(Transition.workspace_id == workspace_id, Signal.object == obj))


register_change_source("account", _metrics_changes(AccountMetrics, "account_id"))
register_change_source("user", _metrics_changes(UserMetrics, "user_id"))
register_change_source("account", _transition_changes)
register_change_source("user", _transition_changes)


def changed_since(workspace_id: int, obj: str, table: sa.Table, since: datetime) -> Any:
    """WHERE clause: the record, or anything a change source follows, changed at or after
    `since` (each source's own index answers its part)."""
    sources = [source(workspace_id, obj) for source in CHANGE_SOURCES[obj]]
    moved = sa.union(*(s.where(s.selected_columns.at >= since).with_only_columns(
        s.selected_columns.entity_id) for s in sources)).subquery()
    return sa.or_(table.c.updated_at >= since,
                  table.c[ID_FIELD[obj]].in_(sa.select(moved.c.entity_id)))


def latest_changes(session: Session, workspace_id: int, obj: str,
                   ids: Sequence[str]) -> dict[str, datetime]:
    """The latest time any change source saw for each of `ids` (absent: none)."""
    latest: dict[str, datetime] = {}
    for part in chunks(list(ids)):
        sources = [s.where(s.selected_columns.entity_id.in_(part))
                   for s in (source(workspace_id, obj) for source in CHANGE_SOURCES[obj])]
        union = sa.union_all(*sources).subquery()
        rows = session.execute(sa.select(union.c.entity_id, sa.func.max(union.c.at))
                               .group_by(union.c.entity_id)).all()
        latest.update({entity: as_utc(at) for entity, at in rows if at is not None})
    return latest


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes, which are UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def with_changes(rows: Sequence[Any], obj: str, latest: dict[str, datetime]) -> list[dict]:
    """The rows as dicts, `updated_at` moved to the latest change of each."""
    out = []
    for row in rows:
        record = dict(row)
        own, other = as_utc(record["updated_at"]), latest.get(record[ID_FIELD[obj]])
        record["updated_at"] = other if other is not None and (own is None or other > own) else own
        out.append(record)
    return out


def next_updated_since(started: datetime | None = None) -> str:
    """What the next incremental pull passes as `updated_since=` (see OVERLAP)."""
    return ((started or utcnow()) - OVERLAP).isoformat().replace("+00:00", "Z")


# --- the built-in includes ------------------------------------------------------------------

METRIC_COLUMNS = {
    "account": ("active_users_7d", "active_users_30d", "events_30d", "events_prev_30d",
                "last_seen"),
    "user": ("active_days_30d", "events_30d", "events_prev_30d", "last_seen"),
}
METRICS_MODEL = {"account": (AccountMetrics, "account_id"), "user": (UserMetrics, "user_id")}


def _metrics_include(obj: str) -> Include:
    model, key = METRICS_MODEL[obj]
    names = METRIC_COLUMNS[obj]
    empty = {name: (None if name == "last_seen" else 0) for name in names}

    def load(session: Session, workspace_id: int, ids: Sequence[str]) -> dict[str, Any]:
        found = {entity: empty for entity in ids}  # no activity yet: zeros
        for part in chunks(list(ids)):
            query = sa.select(getattr(model, key), *(getattr(model, n) for n in names)).where(
                model.workspace_id == workspace_id, getattr(model, key).in_(part))
            for entity, *values in session.execute(query):
                found[entity] = {n: _json(v) for n, v in zip(names, values)}
        return found

    def csv(session: Session, workspace_id: int) -> CsvColumns:
        return [(f"metrics.{n}", lambda value, n=n: value[n]) for n in names]

    return Include(load, csv)


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat().replace("+00:00", "Z")
    return value


def _signals_include(obj: str) -> Include:
    def load(session: Session, workspace_id: int, ids: Sequence[str]) -> dict[str, Any]:
        found: dict[str, list[dict[str, Any]]] = {entity: [] for entity in ids}
        for part in chunks(list(ids)):
            query = (sa.select(SignalMember.entity_id, Signal.id, Signal.name, Signal.category,
                               SignalMember.entered_at)
                     .join(Signal, sa.and_(Signal.workspace_id == SignalMember.workspace_id,
                                           Signal.id == SignalMember.signal_id))
                     .where(SignalMember.workspace_id == workspace_id, Signal.object == obj,
                            SignalMember.entity_id.in_(part))
                     .order_by(SignalMember.entity_id, Signal.name, Signal.id))
            for entity, signal_id, name, category, entered_at in session.execute(query):
                found[entity].append({"id": signal_id, "name": name, "category": category,
                                      "entered_at": _json(entered_at)})
        return found

    def csv(session: Session, workspace_id: int) -> CsvColumns:
        # One column per signal of the object: when the record entered it, empty when not in it.
        signals = session.execute(sa.select(Signal.id, Signal.name).where(
            Signal.workspace_id == workspace_id, Signal.object == obj)
            .order_by(Signal.name, Signal.id)).all()
        return [(f"signals.{name}", lambda value, signal_id=signal_id: next(
            (s["entered_at"] for s in value if s["id"] == signal_id), None))
            for signal_id, name in signals]

    return Include(load, csv)


for _obj in ("account", "user"):
    register_include(_obj, "metrics", _metrics_include(_obj))
    register_include(_obj, "signals", _signals_include(_obj))
