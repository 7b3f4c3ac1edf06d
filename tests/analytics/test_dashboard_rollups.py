"""The dashboards' read model on both databases: exact numbers for a small, known workspace."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from correlated.analytics import listing, rollups, summaries
from correlated.ingest.engine import Options, ingest

TODAY = date(2026, 3, 31)  # a Tuesday


def at(days_ago: int, hour: int = 12) -> str:
    day = TODAY - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc).isoformat()


@pytest.fixture
def data(db, workspace):
    ingest(db.session, workspace, "account", "upsert", [
        {"account_id": "a", "name": "Alpha", "plan": "pro"},
        {"account_id": "b", "name": "Beta", "plan": "free"},
        {"account_id": "c", "name": "Gamma"},
    ])
    ingest(db.session, workspace, "user", "upsert", [
        {"user_id": "u1", "email": "u1@a.io", "account_id": "a"},
        {"user_id": "u2", "email": "u2@a.io", "account_id": "a"},
        {"user_id": "u3", "email": "u3@b.io", "account_id": "b"},
    ])
    events = [
        {"event": "sign_in", "user_id": "u1", "timestamp": at(0)},
        {"event": "sign_in", "user_id": "u1", "timestamp": at(0, 15)},
        {"event": "report", "user_id": "u1", "timestamp": at(3)},
        {"event": "sign_in", "user_id": "u2", "timestamp": at(10)},
        {"event": "sign_in", "user_id": "u2", "timestamp": at(40)},
        {"event": "sign_in", "user_id": "u3", "timestamp": at(45)},
        {"event": "sign_in", "user_id": "u3", "timestamp": at(100)},  # outside every window
    ]
    ingest(db.session, workspace, "event", "insert", events)
    # An event with an account but no user: counts as activity, makes nobody active.
    ingest(db.session, workspace, "event", "insert",
           [{"event": "billing", "account_id": "b", "timestamp": at(1)}],
           Options(event_needs_user=False))
    summaries.ensure_fresh(db.session, workspace.id, TODAY)  # what a page does before it reads
    return workspace


def test_overview_numbers(db, data):
    events = rollups.event_days(db.session, data.id, days=60, today=TODAY)
    activity = rollups.account_metrics(db.session, data.id)
    windows = ["events_30d", "events_prev_30d"]
    assert activity.loc["a", windows].tolist() == [4, 1]
    assert activity.loc["b", windows].tolist() == [1, 1]
    totals = rollups.overview_totals(db.session, data.id, events, today=TODAY)
    assert (totals.accounts, totals.users) == (3, 3)
    assert (totals.active_accounts, totals.active_accounts_prev) == (2, 2)
    assert (totals.active_users, totals.active_users_prev) == (2, 2)
    assert (totals.events, totals.events_prev) == (5, 2)
    top, dropped = rollups.movers(db.session, data.id)
    assert list(top.index) == ["a", "b"] and list(top["name"]) == ["Alpha", "Beta"]
    assert dropped.empty  # nobody fell: a rose, b stayed


def test_daily_actives_and_events_by_day(db, data):
    daily = rollups.daily_actives(db.session, data.id, days=30, today=TODAY)
    assert len(daily) == 30 and daily.index[-1] == datetime(2026, 3, 31)
    assert daily.loc["2026-03-31"].tolist() == [1, 1]  # u1 twice still counts once
    assert daily.loc["2026-03-30"].tolist() == [1, 0]  # b's userless billing event
    assert daily["users"].sum() == 3
    table = rollups.by_day(rollups.event_days(db.session, data.id, 90, TODAY), 30, TODAY)
    assert list(table.columns[:1]) == ["sign_in"]
    assert table.loc["2026-03-31", "sign_in"] == 2 and table.values.sum() == 5


def test_event_summary_and_breakdown(db, data):
    summary = rollups.event_summary(rollups.event_days(db.session, data.id, 90, TODAY), TODAY)
    sign_in = summary.loc["sign_in"]
    assert [sign_in[c] for c in ("events_7d", "events_30d", "events_90d", "events_prev_30d")] \
        == [2, 3, 5, 2]
    assert sign_in["change_pct"] == 50.0
    assert summary.index[0] == "sign_in" and set(summary.index[1:]) == {"billing", "report"}
    breakdown = rollups.event_breakdown(db.session, data.id, "sign_in", "plan", today=TODAY)
    assert breakdown.to_dict("records") == [{"value": "pro", "events": 3, "accounts": 1,
                                             "filter_op": "eq", "filter_value": "pro"}]


def test_weekly_active_users(db, data):
    weekly = rollups.weekly_active_users(db.session, data.id, "a", weeks=3, today=TODAY)
    assert list(weekly.index.strftime("%Y-%m-%d")) == ["2026-03-16", "2026-03-23", "2026-03-30"]
    assert weekly.tolist() == [1, 1, 1]  # u2 (Mar 21), u1 (Mar 28), u1 (Mar 31)


def test_list_metrics_from_the_two_level_aggregate(db, data):
    """Sorting and filtering on metrics uses SQL aggregates; they must match the page's."""
    def ids(**spec):
        page = listing.list_page(db.session, listing.ACCOUNTS, data.id,
                                 listing.ListSpec(**spec), {"plan": "STRING"})
        return [r["account_id"] for r in page.rows]

    lt = listing.Filter
    assert ids(filters=[lt("active_users_30d", "eq", "0")]) == ["b", "c"]  # billing: no user
    assert ids(filters=[lt("active_users_7d", "gt", "0")]) == ["a"]
    assert ids(filters=[lt("events_prev_30d", "eq", "1")]) == ["a", "b"]
    # last_seen reads all days: the previous-30-days window must stay bounded at 60 days.
    assert ids(filters=[lt("events_prev_30d", "eq", "1"), lt("last_seen", "gt", "2026-01-01")]) \
        == ["a", "b"]
    assert ids(sort="trend", desc=True) == ["a", "b", "c"]
    assert ids(filters=[lt("last_seen", "lt", "2026-03-01")]) == ["c"]  # never seen
    users = listing.list_page(db.session, listing.USERS, data.id,
                              listing.ListSpec(sort="active_days_30d", desc=True), {})
    assert [(r["user_id"], r["active_days_30d"]) for r in users.rows] == \
        [("u1", 2), ("u2", 1), ("u3", 0)]
