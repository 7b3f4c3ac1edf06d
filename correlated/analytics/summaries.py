"""Summaries beside the daily rollup, so that dashboards read tens of rows, not hundreds of
thousands:

- `account_metrics`, `user_metrics`: every account's and user's current metrics, with windows
  ending on `summary_state.as_of` (the day they were computed for);
- `daily_summary`: distinct active accounts and users per day;
- `daily_events`: events per day and event name.

Whatever changes rollup rows (ingest, re-attribution, removal) marks the accounts, users and
days it touched in `stale_keys`, in the same transaction. `refresh` recomputes exactly those
from the rollup; when the day changes it also recomputes the accounts and users with activity
on the days that left or entered a window. `ensure_fresh` runs once per request before a
page reads (see web/common.py), or from the background worker: one indexed lookup when nothing
changed, so ingest stays a few set-based statements and a page after a busy sync pays only for
what that sync touched. The read functions (rollups, listing) only read.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session, scoped_session

from .. import database
from ..database import chunks
from ..models import (AccountMetrics, DailyActivity, DailyEvents, DailySummary, StaleKey,
                     SummaryState, UserMetrics, utcnow)

ACT = DailyActivity
KINDS = ("account", "user", "day")
NEVER = date(1, 1, 1)  # as_of of a state row that was never computed
# Above this many stale keys of one kind, one pass over the whole rollup beats IN lists.
FULL_REFRESH_AT = 5000


# hook(session, workspace_id, keys taken {kind: set}, full {kind: bool}, refreshed_at), called
# inside each refresh's transaction
REFRESH_HOOKS: list[Callable[..., None]] = []


def today_utc() -> date:
    return datetime.now(timezone.utc).date()


# --- marking --------------------------------------------------------------------------------

def mark_stale(session: Session, workspace_id: int, accounts: Iterable[str | None] = (),
               users: Iterable[str | None] = (), days: Iterable[date] = ()) -> None:
    """Mark keys whose rollup rows changed: one row per kind (see models.StaleKey)."""
    keys = {"account": {a for a in accounts if a}, "user": {u for u in users if u},
            "day": {d.isoformat() for d in days}}
    rows = [{"workspace_id": workspace_id, "kind": kind, "keys": sorted(keys[kind])}
            for kind in sorted(keys) if keys[kind]]
    if rows:
        session.execute(sa.insert(StaleKey.__table__), rows)


def mark_stale_rollup(session: Session, workspace_id: int, *where: Any) -> None:
    """Mark the accounts, users and days of the rollup rows matching `where`, in SQL."""
    bind = session.connection()
    for kind, column in (("account", ACT.account_id), ("user", ACT.user_id),
                         ("day", database.day_key(bind, ACT.day))):
        select = (sa.select(sa.literal(workspace_id), sa.literal(kind),
                            database.json_array_agg(bind, sa.distinct(column)))
                  .where(ACT.workspace_id == workspace_id, column != "", *where)
                  .having(sa.func.count() > 0))
        session.execute(sa.insert(StaleKey.__table__).from_select(
            ["workspace_id", "kind", "keys"], select))


# PostgreSQL ingest marks straight from its COPY staging table (see writes.stage).
MARK_STAGED_EVENTS = """
INSERT INTO stale_keys (workspace_id, kind, keys)
SELECT s.workspace_id, k.kind, jsonb_agg(DISTINCT k.key)
FROM {staging} AS s, LATERAL (VALUES
    ('account', s.account_id), ('user', s.user_id),
    ('day', to_char(timezone('UTC', s.timestamp), 'YYYY-MM-DD'))) AS k (kind, key)
WHERE k.key IS NOT NULL AND k.key <> ''
GROUP BY s.workspace_id, k.kind
"""


# --- refreshing -----------------------------------------------------------------------------

def ensure_fresh(session: Session, workspace_id: int, today: date | None = None) -> bool:
    """Refresh the summaries if anything changed or the day moved on; True if it refreshed.

    A unit of work of its own: call it before the session's own work (a request, before the
    page reads). The refresh ends the session's read transaction and begins a write one
    instead: SQLite refuses to turn a read transaction into a writer once another writer
    committed, and a read snapshot would not see the refreshed rows.
    """
    today = today or today_utc()
    with session.no_autoflush:  # the caller's changes stay the caller's (see begin_write)
        if is_fresh(session, workspace_id, today):
            return False
    if isinstance(session, scoped_session):
        session = session()
    if not database.begin_write(session):
        raise RuntimeError("ensure_fresh is a unit of work of its own: call it before the "
                           "session has pending changes")
    try:
        refresh(session, workspace_id, today)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return True


def is_fresh(session: Session, workspace_id: int, today: date) -> bool:
    """Whether the summaries are as of `today` with nothing marked stale (one indexed lookup)."""
    as_of, stale = session.execute(sa.select(
        sa.select(SummaryState.as_of).where(SummaryState.workspace_id == workspace_id)
        .scalar_subquery(),
        sa.exists().where(StaleKey.workspace_id == workspace_id))).one()
    return as_of == today and not stale


def refresh(session: Session, workspace_id: int, today: date) -> None:
    """Recompute what is stale, in the caller's transaction."""
    bind = session.connection()
    session.execute(database.insert(bind, SummaryState.__table__)
                    .values(workspace_id=workspace_id, as_of=NEVER).on_conflict_do_nothing())
    # One refresher per workspace at a time (PostgreSQL; SQLite has one writer anyway).
    as_of = session.execute(sa.select(SummaryState.as_of).where(
        SummaryState.workspace_id == workspace_id).with_for_update()).scalar_one()
    taken = session.execute(sa.delete(StaleKey).where(StaleKey.workspace_id == workspace_id)
                            .returning(StaleKey.kind, StaleKey.keys)).all()
    keys: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for kind, marked in taken:
        keys[kind].update(marked)
    full = {kind: False for kind in KINDS}
    if as_of == NEVER:
        full = {kind: True for kind in KINDS}
    elif as_of != today:
        if as_of < today <= as_of + timedelta(days=60):
            _roll_forward(session, workspace_id, as_of, today)
        else:  # far ahead, or back in time (tests): simpler to recompute
            full["account"] = full["user"] = True
    stamp = utcnow()
    for hook in REFRESH_HOOKS:  # the signals keep what this refresh took, for their worker
        hook(session, workspace_id, keys, full, stamp)
    days = sorted(_parse_days(keys["day"]))
    _refresh(session, workspace_id, AccountMetrics, _account_rows, today,
             None if full["account"] else sorted(keys["account"]))
    _refresh(session, workspace_id, UserMetrics, _user_rows, today,
             None if full["user"] else sorted(keys["user"]))
    for model, rows in ((DailySummary, _day_summary_rows), (DailyEvents, _day_event_rows)):
        _refresh(session, workspace_id, model, rows, today, None if full["day"] else days)
    session.execute(sa.update(SummaryState).where(SummaryState.workspace_id == workspace_id)
                    .values(as_of=today, refreshed_at=stamp))


def _roll_forward(session: Session, workspace_id: int, as_of: date, today: date) -> None:
    """Move every window from ending on `as_of` to ending on `today` in place, set-based.

    Sums and active days are days leaving and entering a window: they change by what the
    rollup holds for those few days (with a one-day move, four days of the rollup). Distinct
    active users of an account cannot be updated that way; they are recounted from the 30 days
    that now make the window. Stale keys are recomputed afterwards anyway."""
    one = timedelta(days=1)
    ranges = {
        "enter_30d": (as_of + one, today),  # dated after as_of (clocks ahead) now in the window
        "leave_30d": (as_of - timedelta(days=29), today - timedelta(days=30)),  # to "before"
        "leave_prev": (as_of - timedelta(days=59), today - timedelta(days=60)),
    }
    on = sa.or_(*(ACT.day.between(*r) for r in ranges.values()))

    def total(name: str) -> Any:
        return sum_if(ACT.day.between(*ranges[name]), ACT.count)

    for model, key in ((UserMetrics, ACT.user_id), (AccountMetrics, ACT.account_id)):
        columns = [key.label("key"), total("enter_30d").label("enter"),
                   total("leave_30d").label("leave"), total("leave_prev").label("leave_prev")]
        if model is UserMetrics:
            columns += [sa.func.count(sa.distinct(sa.case((ACT.day.between(*ranges[name]),
                                                           ACT.day)))).label(f"{name}_days")
                        for name in ("enter_30d", "leave_30d")]
        delta = (sa.select(*columns).where(ACT.workspace_id == workspace_id, key != "", on)
                 .group_by(key).subquery())
        values = {"events_30d": model.events_30d - delta.c.leave + delta.c.enter,
                  "events_prev_30d": model.events_prev_30d - delta.c.leave_prev + delta.c.leave}
        if model is UserMetrics:
            values["active_days_30d"] = (model.active_days_30d - delta.c.leave_30d_days
                                         + delta.c.enter_30d_days)
        session.execute(sa.update(model).where(
            model.workspace_id == workspace_id, getattr(model, _key(model)) == delta.c.key)
            .values(**values))
    _recount_active_users(session, workspace_id, today)


def _recount_active_users(session: Session, workspace_id: int, today: date) -> None:
    start = _starts(today)
    per_user = (
        sa.select(ACT.account_id, ACT.user_id, sa.func.max(ACT.day).label("last_day"))
        .where(ACT.workspace_id == workspace_id, ACT.account_id != "", ACT.user_id != "",
               ACT.day.between(start[30], today))
        .group_by(ACT.account_id, ACT.user_id).subquery()
    )
    active = (
        sa.select(per_user.c.account_id,
                  sa.func.count(sa.case((per_user.c.last_day >= start[7], 1))).label("u7"),
                  sa.func.count().label("u30"))
        .group_by(per_user.c.account_id).subquery()
    )
    m = AccountMetrics
    session.execute(sa.update(m).where(m.workspace_id == workspace_id, m.active_users_30d > 0)
                    .values(active_users_7d=0, active_users_30d=0))
    session.execute(sa.update(m).where(m.workspace_id == workspace_id,
                                       m.account_id == active.c.account_id)
                    .values(active_users_7d=active.c.u7, active_users_30d=active.c.u30))


def _parse_days(keys: Iterable[str]) -> Iterable[date]:
    for key in keys:
        try:
            yield date.fromisoformat(key)
        except ValueError:
            continue


def _refresh(session: Session, workspace_id: int, model: Any, rows: Any, today: date,
             keys: list | None) -> None:
    """Replace the summary rows of `keys` (all of the workspace's when None) by recomputed
    ones: rows that no longer have activity disappear with the DELETE."""
    table = model.__table__
    key_column = table.c[_key(model)]
    # The aggregates select the summary columns; updated_at (metrics) takes its default.
    columns = [c.name for c in table.c if c.name != "updated_at"]
    if keys is None or len(keys) > FULL_REFRESH_AT:
        session.execute(sa.delete(table).where(table.c.workspace_id == workspace_id))
        session.execute(sa.insert(table).from_select(columns, rows(workspace_id, today)))
        return
    for part in chunks(keys):
        session.execute(sa.delete(table).where(table.c.workspace_id == workspace_id,
                                               key_column.in_(part)))
        session.execute(sa.insert(table).from_select(
            columns, rows(workspace_id, today, part)))


def _key(model: Any) -> str:
    return {AccountMetrics: "account_id", UserMetrics: "user_id"}.get(model, "day")


# --- the aggregates -------------------------------------------------------------------------
# Each returns a SELECT whose columns are the summary table's, in its order.

def _starts(today: date) -> dict[int, date]:
    """First day of the last 7, 30 and 60 days ending `today`."""
    return {n: today - timedelta(days=n - 1) for n in (7, 30, 60)}


def sum_if(condition: Any, value: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, value), else_=0)), 0)


def _account_rows(workspace_id: int, today: date, keys: list | None = None) -> sa.Select:
    start = _starts(today)
    in_30d = ACT.day.between(start[30], today)
    before = sa.and_(ACT.day >= start[60], ACT.day < start[30])
    # Per (account, user) first, a hashed GROUP BY; distinct users are then plain counts.
    per_user = (
        sa.select(ACT.account_id, ACT.user_id,
                  sa.func.max(sa.case((ACT.day <= today, ACT.day))).label("last_day"),
                  sum_if(in_30d, ACT.count).label("events_30d"),
                  sum_if(before, ACT.count).label("events_prev_30d"),
                  sa.func.max(ACT.last_at).label("last_seen"))
        .where(ACT.workspace_id == workspace_id, ACT.account_id != "",
               *([ACT.account_id.in_(keys)] if keys is not None else []))
        .group_by(ACT.account_id, ACT.user_id).subquery()
    )
    person = per_user.c.user_id != ""  # "" is "no user": such events make nobody active
    return sa.select(
        sa.literal(workspace_id), per_user.c.account_id,
        sa.func.count(sa.case((sa.and_(person, per_user.c.last_day >= start[7]), 1))),
        sa.func.count(sa.case((sa.and_(person, per_user.c.last_day >= start[30]), 1))),
        sa.func.sum(per_user.c.events_30d), sa.func.sum(per_user.c.events_prev_30d),
        sa.func.max(per_user.c.last_seen),
    ).group_by(per_user.c.account_id)


def _user_rows(workspace_id: int, today: date, keys: list | None = None) -> sa.Select:
    start = _starts(today)
    per_day = (
        sa.select(ACT.user_id, ACT.day, sa.func.sum(ACT.count).label("count"),
                  sa.func.max(ACT.last_at).label("last_seen"))
        .where(ACT.workspace_id == workspace_id, ACT.user_id != "",
               *([ACT.user_id.in_(keys)] if keys is not None else []))
        .group_by(ACT.user_id, ACT.day).subquery()
    )
    day = per_day.c.day
    in_30d = day.between(start[30], today)
    return sa.select(
        sa.literal(workspace_id), per_day.c.user_id,
        sa.func.count(sa.case((in_30d, 1))),
        sum_if(in_30d, per_day.c.count),
        sum_if(sa.and_(day >= start[60], day < start[30]), per_day.c.count),
        sa.func.max(per_day.c.last_seen),
    ).group_by(per_day.c.user_id)


def _day_summary_rows(workspace_id: int, today: date, days: list | None = None) -> sa.Select:
    # Distinct (account, user) pairs per day first, read along the rollup's primary key.
    pairs = (
        sa.select(ACT.day, ACT.account_id, ACT.user_id)
        .where(ACT.workspace_id == workspace_id, *([ACT.day.in_(days)] if days is not None else []))
        .group_by(ACT.day, ACT.account_id, ACT.user_id).subquery()
    )
    return sa.select(
        sa.literal(workspace_id), pairs.c.day,
        sa.func.count(sa.distinct(sa.case((pairs.c.account_id != "", pairs.c.account_id)))),
        sa.func.count(sa.distinct(sa.case((pairs.c.user_id != "", pairs.c.user_id)))),
    ).group_by(pairs.c.day)


def _day_event_rows(workspace_id: int, today: date, days: list | None = None) -> sa.Select:
    return (
        sa.select(sa.literal(workspace_id), ACT.day, ACT.event, sa.func.sum(ACT.count),
                  sa.func.max(ACT.last_at))
        .where(ACT.workspace_id == workspace_id, *([ACT.day.in_(days)] if days is not None else []))
        .group_by(ACT.day, ACT.event)
    )
