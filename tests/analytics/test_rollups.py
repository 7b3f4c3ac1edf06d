"""The account metrics read model, on both databases."""
from datetime import date, datetime, timedelta, timezone

from correlated.ingest.engine import ingest
from correlated.analytics.rollups import account_metrics, metrics_record
from correlated.analytics.summaries import ensure_fresh

TODAY = date(2026, 3, 31)


def at(days_ago: int) -> str:
    day = TODAY - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc).isoformat()


def test_account_metrics_windows(db, workspace):
    ingest(db.session, workspace, "account", "upsert",
           [{"account_id": "a", "name": "A"}, {"account_id": "b", "name": "B"}])
    ingest(db.session, workspace, "user", "upsert", [
        {"user_id": "u1", "email": "u1@a.io", "account_id": "a"},
        {"user_id": "u2", "email": "u2@a.io", "account_id": "a"},
        {"user_id": "u3", "email": "u3@b.io", "account_id": "b"},
    ])
    ingest(db.session, workspace, "event", "insert", [
        {"event": "sign_in", "user_id": "u1", "timestamp": at(0)},
        {"event": "sign_in", "user_id": "u1", "timestamp": at(1)},
        {"event": "sign_in", "user_id": "u2", "timestamp": at(10)},
        {"event": "sign_in", "user_id": "u2", "timestamp": at(40)},
        {"event": "sign_in", "user_id": "u3", "timestamp": at(45)},
    ])
    ensure_fresh(db.session, workspace.id, TODAY)
    frame = account_metrics(db.session, workspace.id)
    a = metrics_record(frame, "a")
    assert (a["users"], a["active_users_7d"], a["active_users_30d"]) == (2, 1, 2)
    assert (a["events_30d"], a["events_prev_30d"]) == (3, 1)
    assert a["last_seen"].startswith(TODAY.isoformat())
    b = metrics_record(frame, "b")
    assert (b["users"], b["active_users_30d"], b["events_30d"], b["events_prev_30d"]) == (1, 0, 0, 1)
    assert metrics_record(frame, "missing")["users"] == 0
    only_b = account_metrics(db.session, workspace.id, ["b"])
    assert list(only_b.index) == ["b"]
