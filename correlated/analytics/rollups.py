"""Read model: what the dashboards show, from SQL aggregates shaped with pandas.

Workspace-wide figures and per-account/per-user metrics come from the summaries (see
summaries.py), as last refreshed (once per request, before the page reads, or by the
worker): these functions only read, never write or commit. One account's or one
user's own charts aggregate `daily_activity` through its account and user indexes; raw events
are only read for "latest events" lists, through an index and a LIMIT. Functions take the
session and the workspace id and return DataFrames or plain values.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import vocabulary
from . import buckets, summaries
from ..models import (Account, AccountMetrics, DailyActivity, DailyEvents, DailySummary,
                     Event, User, UserMetrics)

ACCOUNT_METRICS = list(vocabulary.ACCOUNT_METRICS)  # lists: pandas reads a tuple as one label
USER_METRICS = list(vocabulary.USER_METRICS)
ACT = DailyActivity


today_utc = summaries.today_utc


@dataclass(frozen=True)
class Periods:
    """Day windows ending today (inclusive): `start(30)` is the first day of the last 30."""

    today: date

    def start(self, days: int) -> date:
        return self.today - timedelta(days=days - 1)

    def days(self, count: int) -> pd.DatetimeIndex:
        return pd.date_range(self.start(count), self.today, freq="D")


def periods(today: date | None = None) -> Periods:
    return Periods(today or today_utc())


def _frame(session: Session, query: sa.Select, index: str | None = None) -> pd.DataFrame:
    columns = list(query.selected_columns.keys())
    rows = session.execute(query).all()
    # Column by column: pandas inspects every row object when handed a list of rows.
    values = zip(*rows) if rows else ([] for _ in columns)
    frame = pd.DataFrame(dict(zip(columns, (list(v) for v in values))), columns=columns)
    return frame.set_index(index) if index else frame


def _in_workspace(workspace_id: int, since: date, today: date) -> tuple:
    return ACT.workspace_id == workspace_id, ACT.day >= since, ACT.day <= today


# --- per-account and per-user metrics -------------------------------------------------------

def account_metrics(session: Session, workspace_id: int,
                    account_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Per account: users, active users 7/30 days, events 30 days (and the 30 before), last seen.

    Indexed by account_id; accounts with no users and no activity are absent.
    """
    m = AccountMetrics
    recent = sa.select(m.account_id, m.active_users_7d, m.active_users_30d, m.events_30d,
                       m.events_prev_30d, m.last_seen).where(m.workspace_id == workspace_id)
    users = user_counts(workspace_id, account_ids)
    if account_ids is not None:
        recent = recent.where(m.account_id.in_(account_ids))
    frames = [_frame(session, q, "account_id") for q in (users, recent)]
    return _counts_and_time(pd.concat(frames, axis=1), ACCOUNT_METRICS)


def user_counts(workspace_id: int, account_ids: Sequence[str] | None = None) -> sa.Select:
    """Live users per account (account_id, users), of `account_ids` only if given."""
    query = (sa.select(User.account_id, sa.func.count().label("users"))
             .where(User.workspace_id == workspace_id, User.archived_at.is_(None),
                    User.account_id.is_not(None))
             .group_by(User.account_id))
    return query if account_ids is None else query.where(User.account_id.in_(account_ids))


def user_metrics(session: Session, workspace_id: int, user_ids: Sequence[str]) -> pd.DataFrame:
    """Per user: active days and events in 30 days (and the 30 before), last seen."""
    m = UserMetrics
    query = sa.select(m.user_id, m.active_days_30d, m.events_30d, m.events_prev_30d,
                      m.last_seen).where(m.workspace_id == workspace_id, m.user_id.in_(user_ids))
    return _counts_and_time(_frame(session, query, "user_id"), USER_METRICS)


def account_user_activity(session: Session, workspace_id: int, account_id: str,
                          today: date | None = None) -> pd.DataFrame:
    """Per user of one account (read through the account index): events 30 days, last seen."""
    p = periods(today)
    query = (
        sa.select(ACT.user_id, summaries.sum_if(ACT.day >= p.start(30), ACT.count).label("events_30d"),
                  sa.func.max(ACT.last_at).label("last_seen"))
        .where(ACT.workspace_id == workspace_id, ACT.account_id == account_id,
               ACT.user_id != "", ACT.day <= p.today)
        .group_by(ACT.user_id)
    )
    return _counts_and_time(_frame(session, query, "user_id"), ["events_30d", "last_seen"])


def _counts_and_time(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = frame.reindex(columns=columns)
    counts = [c for c in columns if c != "last_seen"]
    out[counts] = out[counts].fillna(0).astype("int64")
    out["last_seen"] = pd.to_datetime(out["last_seen"], utc=True, format="mixed")
    return out


def metrics_record(frame: pd.DataFrame, key: str) -> dict:
    """One row of a metrics frame as JSON-ready values (zeros when the key is absent)."""
    if key not in frame.index:
        return {c: (None if c == "last_seen" else 0) for c in frame.columns}
    row = frame.loc[key]
    out = {}
    for column, value in row.items():
        if column == "last_seen":
            out[column] = None if pd.isna(value) else value.isoformat()
        else:
            out[column] = int(value)
    return out


def change_pct(current: float, previous: float) -> float | None:
    """Percent change, None when there is nothing to compare with."""
    if not previous:
        return None
    return (current - previous) * 100.0 / previous


# --- overview -------------------------------------------------------------------------------

@dataclass
class Totals:
    accounts: int
    users: int
    active_accounts: int
    active_accounts_prev: int
    active_users: int
    active_users_prev: int
    events: int
    events_prev: int


def overview_totals(session: Session, workspace_id: int, events: pd.DataFrame,
                    today: date | None = None) -> Totals:
    """Headline numbers for the last 30 days and the 30 before (`events` from event_days)."""
    p = periods(today)
    accounts = _active_counts(session, AccountMetrics, workspace_id)
    users = _active_counts(session, UserMetrics, workspace_id)
    recent = events["day"] >= pd.Timestamp(p.start(30))
    return Totals(
        accounts=_count_live(session, Account, workspace_id),
        users=_count_live(session, User, workspace_id),
        active_accounts=accounts[0], active_accounts_prev=accounts[1],
        active_users=users[0], active_users_prev=users[1],
        events=int(events.loc[recent, "count"].sum()),
        events_prev=int(events.loc[~recent, "count"].sum()),
    )


def _active_counts(session: Session, model: type, workspace_id: int) -> tuple[int, int]:
    """How many had events in the last 30 days, and in the 30 before."""
    row = session.execute(sa.select(
        sa.func.count(sa.case((model.events_30d > 0, 1))),
        sa.func.count(sa.case((model.events_prev_30d > 0, 1))),
    ).where(model.workspace_id == workspace_id)).one()
    return int(row[0]), int(row[1])


def _count_live(session: Session, model: type, workspace_id: int) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(model).where(
        model.workspace_id == workspace_id, model.archived_at.is_(None)))


DROPS_BY = ("events", "percent")  # "Biggest drops" ranks by events lost, or by percent lost


def movers(session: Session, workspace_id: int, limit: int = 8,
           drops_by: str = "events") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The most active live accounts, and those whose activity dropped most (30 days vs before:
    by events lost, or by the share of the previous 30 days' events lost)."""
    m = AccountMetrics
    change = (m.events_30d - m.events_prev_30d).label("change")
    base = (sa.select(m.account_id, Account.name, m.events_30d, m.events_prev_30d, change)
            .join(Account, sa.and_(Account.workspace_id == m.workspace_id,
                                   Account.account_id == m.account_id))
            .where(m.workspace_id == workspace_id, Account.archived_at.is_(None)))
    top = base.where(m.events_30d > 0).order_by(m.events_30d.desc(), m.account_id).limit(limit)
    rank = change * 1.0 / m.events_prev_30d if drops_by == "percent" else change
    dropped = base.where(change < 0).order_by(rank, change, m.account_id).limit(limit)
    return _with_change(_frame(session, top, "account_id")), \
        _with_change(_frame(session, dropped, "account_id"))


def _with_change(frame: pd.DataFrame) -> pd.DataFrame:
    frame["change_pct"] = [change_pct(c, p) for c, p in
                           zip(frame["events_30d"], frame["events_prev_30d"])]
    return frame


def account_names(session: Session, workspace_id: int, ids: Sequence[str]) -> dict[str, str]:
    """Names of the live accounts among `ids`."""
    if not ids:
        return {}
    rows = session.execute(sa.select(Account.account_id, Account.name).where(
        Account.workspace_id == workspace_id, Account.account_id.in_(list(ids)),
        Account.archived_at.is_(None)))
    return {r[0]: r[1] for r in rows}


def user_emails(session: Session, workspace_id: int, ids: Sequence[str]) -> dict[str, str]:
    """Emails of the live users among `ids` (those without one are absent)."""
    if not ids:
        return {}
    rows = session.execute(sa.select(User.user_id, User.email).where(
        User.workspace_id == workspace_id, User.user_id.in_(list(ids)),
        User.archived_at.is_(None)))
    return {r[0]: r[1] for r in rows if r[1]}


# --- series ---------------------------------------------------------------------------------

def daily_actives(session: Session, workspace_id: int, days: int = 30,
                  today: date | None = None) -> pd.DataFrame:
    """Active accounts and active users per day, every day present (zeros included)."""
    p = periods(today)
    s = DailySummary
    query = (sa.select(s.day, s.active_accounts.label("accounts"), s.active_users.label("users"))
             .where(s.workspace_id == workspace_id, s.day.between(p.start(days), p.today)))
    return _daily(_frame(session, query), p.days(days), ["accounts", "users"])


def event_days(session: Session, workspace_id: int, days: int = 90, today: date | None = None,
               account_id: str | None = None, user_id: str | None = None) -> pd.DataFrame:
    """Events per (day, event name) with the latest time: one pass that feeds a page's
    daily chart (`by_day`) and its per-event table (`event_summary`)."""
    p = periods(today)
    if account_id is None and user_id is None:  # workspace-wide: the per-day summary
        d = DailyEvents
        query = sa.select(d.day, d.event, d.count, d.last_at).where(
            d.workspace_id == workspace_id, d.day.between(p.start(days), p.today))
    else:
        query = (
            sa.select(ACT.day, ACT.event, sa.func.sum(ACT.count).label("count"),
                      sa.func.max(ACT.last_at).label("last_at"))
            .where(*_in_workspace(workspace_id, p.start(days), p.today),
                   *_scope(account_id, user_id))
            .group_by(ACT.day, ACT.event)
        )
    frame = _frame(session, query)
    frame["day"] = pd.to_datetime(frame["day"])
    frame["count"] = frame["count"].astype("int64")
    frame.attrs["days"] = days
    return frame


def by_day(frame: pd.DataFrame, days: int, today: date | None = None) -> pd.DataFrame:
    """Day x event name counts for the last `days` days (every day present, biggest name first)."""
    p = periods(today)
    recent = frame[frame["day"] >= pd.Timestamp(p.start(days))]
    # Rows are unique per (day, event) already: unstack, no pivot_table aggregation needed.
    table = recent.set_index(["day", "event"])["count"].unstack(fill_value=0)
    table = table.reindex(p.days(days), fill_value=0).astype("int64")
    order = table.sum().sort_values(ascending=False).index  # biggest first: bottom of the stack
    return table[order]


def event_summary(frame: pd.DataFrame, today: date | None = None) -> pd.DataFrame:
    """Per event name: events in 7, 30 and 90 days, the 30 before the last 30, last seen."""
    p = periods(today)
    day = frame["day"]
    windows = {"events_7d": day >= pd.Timestamp(p.start(7)),
               "events_30d": day >= pd.Timestamp(p.start(30)),
               "events_90d": day >= pd.Timestamp(p.start(90)),
               "events_prev_30d": (day < pd.Timestamp(p.start(30)))
               & (day >= pd.Timestamp(p.start(60)))}
    counts = frame["count"].to_numpy()
    table = pd.DataFrame({name: np.where(mask.to_numpy(), counts, 0)
                          for name, mask in windows.items()}, index=frame["event"])
    out = table.groupby(level=0).sum()  # plain sums: much cheaper than a mixed .agg()
    out.index.name = "event"
    out["last_seen"] = pd.to_datetime(frame.groupby("event")["last_at"].max(), utc=True,
                                      format="mixed")
    out["change_pct"] = [change_pct(c, b)
                         for c, b in zip(out["events_30d"], out["events_prev_30d"])]
    return out.sort_values(["events_30d", "events_90d"], ascending=False)


def _scope(account_id: str | None, user_id: str | None) -> list:
    scope = []
    if account_id is not None:
        scope.append(ACT.account_id == account_id)
    if user_id is not None:
        scope.append(ACT.user_id == user_id)
    return scope


def _daily(frame: pd.DataFrame, days: pd.DatetimeIndex, columns: list[str]) -> pd.DataFrame:
    frame["day"] = pd.to_datetime(frame["day"])
    return frame.set_index("day").reindex(days).fillna(0)[columns].astype("int64")


def weekly_active_users(session: Session, workspace_id: int, account_id: str, weeks: int = 12,
                        today: date | None = None) -> pd.Series:
    """Distinct active users of an account per week (weeks start on Monday), oldest first."""
    p = periods(today)
    monday = p.today - timedelta(days=p.today.weekday())
    first = monday - timedelta(weeks=weeks - 1)
    query = (
        sa.select(ACT.day, ACT.user_id)
        .where(*_in_workspace(workspace_id, first, p.today), ACT.account_id == account_id,
               ACT.user_id != "")
        .distinct()
    )
    # One row per active user-day of one account (index-backed): small enough to bucket here.
    frame = _frame(session, query)
    index = pd.date_range(first, monday, freq="7D")
    if frame.empty:
        return pd.Series(0, index=index, name="users")
    frame["week"] = pd.to_datetime(frame["day"]).dt.to_period("W-SUN").dt.start_time
    weekly = frame.groupby("week")["user_id"].nunique()
    return weekly.reindex(index, fill_value=0).astype("int64").rename("users")


# --- per event name -------------------------------------------------------------------------

def event_breakdown(session: Session, workspace_id: int, event: str, dimension: str,
                    typ: str = "STRING", display_format: str | None = None,
                    today: date | None = None, limit: int = 12) -> pd.DataFrame:
    """Events of one name in 30 days by an account dimension: numbers and dates in ranges
    (the accounts list filter's buckets, in their order), text by value (largest first, the
    long tail as one row). Columns: value, events, accounts, and the list filter (op, value)
    that selects a row's accounts."""
    p = periods(today)
    # Per account (at most one row per account), then into the dimension's values or ranges.
    per_account = (
        sa.select(ACT.account_id, sa.func.sum(ACT.count).label("events"))
        .where(*_in_workspace(workspace_id, p.start(30), p.today), ACT.event == event,
               ACT.account_id != "")
        .group_by(ACT.account_id).subquery()
    )
    value = Account.traits[dimension].as_string()
    query = (
        sa.select(value.label("value"), per_account.c.events)
        .select_from(per_account)
        .join(Account, sa.and_(Account.workspace_id == workspace_id,
                               Account.account_id == per_account.c.account_id))
        .where(Account.archived_at.is_(None))
    )
    frame = _frame(session, query)
    ranges = account_buckets(session, workspace_id, {dimension: (typ, display_format)})
    if dimension in ranges:
        return _by_bucket(frame, typ, ranges[dimension])
    return _by_value(frame, limit)


def _by_value(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    frame["value"] = frame["value"].map(lambda v: None if v is None else _text(v))
    grouped = (frame.fillna({"value": "(not set)"}).groupby("value", sort=False)["events"]
               .agg(events="sum", accounts="count").reset_index()
               .sort_values(["events", "value"], ascending=[False, True]))
    grouped["filter_op"], grouped["filter_value"] = "eq", grouped["value"]
    grouped.loc[grouped["value"] == "(not set)", ["filter_op", "filter_value"]] = None
    if len(grouped) > limit:  # the long tail as one bar
        rest = grouped.iloc[limit - 1:][["events", "accounts"]].sum()
        grouped = pd.concat([grouped.iloc[:limit - 1], pd.DataFrame([{
            "value": "(other values)", "events": rest["events"], "accounts": rest["accounts"],
            "filter_op": None, "filter_value": None}])])
    return grouped.reset_index(drop=True)


def _text(value: object) -> str:
    """A JSON scalar as text: 196300.0 -> "196300" (SQLite hands numbers back as numbers)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _by_bucket(frame: pd.DataFrame, typ: str, ranges: list[buckets.Bucket]) -> pd.DataFrame:
    frame["value"] = buckets.assign(frame["value"], typ, ranges)
    grouped = frame.groupby("value")["events"].agg(events="sum", accounts="count")
    out = pd.DataFrame({"value": [b.label for b in ranges], "filter_op": "between",
                        "filter_value": [b.filter_value for b in ranges]})
    out = out.join(grouped, on="value").fillna({"events": 0, "accounts": 0})
    out = out[out["events"] > 0]  # ranges no account with the event falls in
    unset = frame["value"].isna()
    if unset.any():
        out = pd.concat([out, pd.DataFrame([{
            "value": "(not set)", "events": frame.loc[unset, "events"].sum(),
            "accounts": int(unset.sum()), "filter_op": None, "filter_value": None}])])
    out[["events", "accounts"]] = out[["events", "accounts"]].astype("int64")
    return out.reset_index(drop=True)


def account_buckets(session: Session, workspace_id: int,
                    dimensions: dict[str, tuple[str, str | None]]) -> dict[str, list]:
    """The ranges of the number and date dimensions among `dimensions` (key -> (type, display
    format)) over the live accounts, in one pass: the breakdown's and the list filter's."""
    wanted = {k: v for k, v in dimensions.items() if v[0] in ("NUMBER", "DATE", "DATETIME")}
    if not wanted:
        return {}
    columns = [Account.traits[k].as_string().label(f"d{i}") for i, k in enumerate(wanted)]
    frame = _frame(session, sa.select(*columns).where(Account.workspace_id == workspace_id,
                                                      Account.archived_at.is_(None)))
    out = {}
    for i, (key, (typ, display_format)) in enumerate(wanted.items()):
        found = buckets.buckets_for(frame[f"d{i}"], typ, display_format)
        if found:
            out[key] = found
    return out


# --- raw events (latest only) ---------------------------------------------------------------

def latest_events(session: Session, workspace_id: int, limit: int = 25,
                  account_id: str | None = None, user_id: str | None = None,
                  event: str | None = None) -> list[Event]:
    """The newest events, through the (workspace, account|user|event, timestamp) indexes."""
    query = sa.select(Event).where(Event.workspace_id == workspace_id)
    if account_id is not None:
        query = query.where(Event.account_id == account_id)
    if user_id is not None:
        query = query.where(Event.user_id == user_id)
    if event is not None:
        query = query.where(Event.event == event)
    return list(session.scalars(query.order_by(Event.timestamp.desc()).limit(limit)))
