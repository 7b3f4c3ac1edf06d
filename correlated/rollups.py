"""Read model: SQL aggregates over the daily rollup, shaped with pandas."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from .models import DailyActivity, User

ACCOUNT_METRICS = ["users", "active_users_7d", "active_users_30d", "events_30d",
                   "events_prev_30d", "last_seen"]


def today_utc() -> date:
    return datetime.now(timezone.utc).date()


def account_metrics(session: Session, workspace_id: int, account_ids: Sequence[str] | None = None,
                    today: date | None = None) -> pd.DataFrame:
    """Per account: users, active users 7/30 days, events 30 days (and the 30 before), last seen.

    Indexed by account_id; accounts with no users and no activity are absent.
    """
    today = today or today_utc()
    act = DailyActivity
    d7, d30, d60 = (today - timedelta(days=n - 1) for n in (7, 30, 60))
    has_user = act.user_id != ""
    recent = (
        sa.select(
            act.account_id,
            sa.func.count(sa.distinct(sa.case((sa.and_(act.day >= d7, has_user), act.user_id))))
            .label("active_users_7d"),
            sa.func.count(sa.distinct(sa.case((sa.and_(act.day >= d30, has_user), act.user_id))))
            .label("active_users_30d"),
            sa.func.sum(sa.case((act.day >= d30, act.count), else_=0)).label("events_30d"),
            sa.func.sum(sa.case((act.day < d30, act.count), else_=0)).label("events_prev_30d"),
        )
        .where(act.workspace_id == workspace_id, act.day >= d60, act.day <= today,
               act.account_id != "")
        .group_by(act.account_id)
    )
    last_seen = (
        sa.select(act.account_id, sa.func.max(act.last_at).label("last_seen"))
        .where(act.workspace_id == workspace_id, act.account_id != "")
        .group_by(act.account_id)
    )
    users = (
        sa.select(User.account_id, sa.func.count().label("users"))
        .where(User.workspace_id == workspace_id, User.archived_at.is_(None),
               User.account_id.is_not(None))
        .group_by(User.account_id)
    )
    if account_ids is not None:
        recent = recent.where(act.account_id.in_(account_ids))
        last_seen = last_seen.where(act.account_id.in_(account_ids))
        users = users.where(User.account_id.in_(account_ids))
    frames = [_frame(session, q, "account_id") for q in (users, recent, last_seen)]
    out = pd.concat(frames, axis=1).reindex(columns=ACCOUNT_METRICS)
    counts = ACCOUNT_METRICS[:-1]
    out[counts] = out[counts].fillna(0).astype("int64")
    out["last_seen"] = pd.to_datetime(out["last_seen"], utc=True)
    return out


def _frame(session: Session, query: sa.Select, index: str) -> pd.DataFrame:
    rows = session.execute(query).mappings().all()
    columns = list(query.selected_columns.keys())
    return pd.DataFrame(rows, columns=columns).set_index(index)


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
