"""The summaries (current metrics per account and user, per-day totals) against the truth:
recomputed in Python from the raw events after every kind of change, on both databases."""
from __future__ import annotations

import random
import threading
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from correlated import database
from correlated.analytics import summaries
from correlated.ingest import writes
from correlated.extensions import db as _db
from correlated.ingest.engine import ingest
from correlated.models import (AccountMetrics, DailyEvents, DailySummary, Event, StaleKey,
                               SummaryState, UserMetrics)
from correlated.ingest.writes import as_utc

T0 = date(2026, 3, 31)
NAMES = ["sign_in", "feature_used", "report_created"]
ACCOUNTS = ["a1", "a2", "a3", "a4"]
USERS = {f"u{i}": ACCOUNTS[i % 4] for i in range(1, 9)} | {"u9": None}  # u9 has no account


def _events(rng: random.Random, count: int, first_day: int = 70) -> list[dict]:
    rows = []
    for _ in range(count):
        when = datetime.combine(T0, datetime.min.time(), timezone.utc) + timedelta(
            days=-rng.randint(-2, first_day), seconds=rng.randint(0, 86_399))
        row = {"event": rng.choice(NAMES), "timestamp": when.isoformat()}
        shape = rng.random()
        if shape < 0.75:
            row["user_id"] = rng.choice(list(USERS))
        elif shape < 0.9:
            row["user_id"] = rng.choice(list(USERS))
            row["account_id"] = rng.choice(ACCOUNTS)  # explicit, not the user's own
        else:
            row["account_id"] = rng.choice(ACCOUNTS)  # an account-level event, no user
        rows.append(row)
    return rows


def truth(session, workspace_id: int, today: date) -> dict[str, dict]:
    """Every summary row, computed in Python from the events table."""
    events = session.execute(sa.select(Event.user_id, Event.account_id, Event.event,
                                       Event.timestamp).where(Event.workspace_id == workspace_id))
    start = {n: today - timedelta(days=n - 1) for n in (7, 30, 60)}
    users: dict = defaultdict(lambda: {"days": set(), "e30": 0, "prev": 0, "last": None})
    accounts: dict = defaultdict(lambda: {"u7": set(), "u30": set(), "e30": 0, "prev": 0,
                                          "last": None})
    days: dict = defaultdict(lambda: (set(), set()))
    per_event: dict = defaultdict(lambda: [0, None])
    for user_id, account_id, name, ts in events:
        ts = as_utc(ts)
        day = ts.date()
        in30, prev = start[30] <= day <= today, start[60] <= day < start[30]
        for key, table in ((user_id, users), (account_id, accounts)):
            if key:
                entry = table[key]
                entry["e30"] += in30
                entry["prev"] += prev
                entry["last"] = max(entry["last"] or ts, ts)
        if user_id and in30:
            users[user_id]["days"].add(day)
        if account_id and user_id:
            if start[7] <= day <= today:
                accounts[account_id]["u7"].add(user_id)
            if in30:
                accounts[account_id]["u30"].add(user_id)
        active_accounts, active_users = days[day]
        if account_id:
            active_accounts.add(account_id)
        if user_id:
            active_users.add(user_id)
        entry = per_event[(day, name)]
        entry[0] += 1
        entry[1] = max(entry[1] or ts, ts)
    return {
        "user": {k: (len(v["days"]), v["e30"], v["prev"], v["last"]) for k, v in users.items()},
        "account": {k: (len(v["u7"]), len(v["u30"]), v["e30"], v["prev"], v["last"])
                    for k, v in accounts.items()},
        "day": {k: (len(a), len(u)) for k, (a, u) in days.items()},
        "event": {k: tuple(v) for k, v in per_event.items()},
    }


def stored(session, workspace_id: int) -> dict[str, dict]:
    def rows(query):
        return session.execute(query).all()

    u, a, d, e = UserMetrics, AccountMetrics, DailySummary, DailyEvents
    return {
        "user": {r[0]: (r[1], r[2], r[3], as_utc(r[4])) for r in rows(sa.select(
            u.user_id, u.active_days_30d, u.events_30d, u.events_prev_30d, u.last_seen)
            .where(u.workspace_id == workspace_id))},
        "account": {r[0]: (r[1], r[2], r[3], r[4], as_utc(r[5])) for r in rows(sa.select(
            a.account_id, a.active_users_7d, a.active_users_30d, a.events_30d,
            a.events_prev_30d, a.last_seen).where(a.workspace_id == workspace_id))},
        "day": {r[0]: (r[1], r[2]) for r in rows(sa.select(
            d.day, d.active_accounts, d.active_users).where(d.workspace_id == workspace_id))},
        "event": {(r[0], r[1]): (r[2], as_utc(r[3])) for r in rows(sa.select(
            e.day, e.event, e.count, e.last_at).where(e.workspace_id == workspace_id))},
    }


def check(session, workspace_id: int, today: date) -> None:
    summaries.ensure_fresh(session, workspace_id, today)
    expected, got = truth(session, workspace_id, today), stored(session, workspace_id)
    for part in expected:
        assert got[part] == expected[part], f"{part} summaries differ from the events"
    assert session.scalar(sa.select(sa.func.count()).select_from(StaleKey)) == 0


@pytest.fixture(params=["incremental", "full"])
def refresh_mode(request, monkeypatch) -> str:
    """Refresh by stale keys (the normal path) or always everything (the bulk path)."""
    if request.param == "full":
        monkeypatch.setattr(summaries, "FULL_REFRESH_AT", 0)
    return request.param


def test_summaries_follow_every_change(db, workspace, refresh_mode):
    rng = random.Random(7)
    session, ws = db.session, workspace.id
    ingest(session, workspace, "account", "upsert",
           [{"account_id": a, "name": a.upper()} for a in ACCOUNTS])
    ingest(session, workspace, "user", "upsert", [
        {"user_id": u, "email": f"{u}@example.com", **({"account_id": a} if a else {})}
        for u, a in USERS.items()])
    first = _events(rng, 300)
    ingest(session, workspace, "event", "insert", first)
    check(session, ws, T0)

    # More events, a third of them re-sent (duplicates change nothing).
    ingest(session, workspace, "event", "insert", _events(rng, 150) + first[:100])
    check(session, ws, T0)

    # u1 moves to another account: its inferred events follow it.
    ingest(session, workspace, "user", "upsert", [{"user_id": "u1", "email": "u1@example.com",
                                                   "account_id": "a3"}])
    check(session, ws, T0)

    # Removing events, some with a user and some without.
    ids = [r[0] for r in session.execute(sa.select(Event.event_id).where(
        Event.workspace_id == ws).order_by(Event.event_id).limit(40))]
    ingest(session, workspace, "event", "remove", [{"event_id": i} for i in ids])
    check(session, ws, T0)

    # The days move on and the windows with them; then back.
    # (One day, a few, past the 30-day window, past both, past what is rolled, then back.)
    shifts = (1, 4, 35, 80, 141, 300, 0)
    for today in (T0 + timedelta(days=n) for n in shifts):
        check(session, ws, today)
        assert session.scalar(sa.select(SummaryState.as_of)) == today

    ingest(session, workspace, "event", "insert", _events(rng, 50, first_day=3))
    check(session, ws, T0)


def test_other_workspaces_untouched(db, workspace, other_tenant):
    ingest(db.session, workspace, "user", "upsert", [{"user_id": "u", "email": "u@x.io"}])
    ingest(db.session, workspace, "event", "insert",
           [{"event": "e", "user_id": "u", "timestamp": f"{T0}T10:00:00Z"}])
    other = other_tenant.workspace
    ingest(db.session, other, "event", "insert",
           [{"event": "e", "user_id": "v", "timestamp": f"{T0}T11:00:00Z"}])
    summaries.ensure_fresh(db.session, workspace.id, T0)
    assert set(stored(db.session, workspace.id)["user"]) == {"u"}
    # The other workspace's marks wait for its own readers.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StaleKey).where(
        StaleKey.workspace_id == other.id)) > 0
    summaries.ensure_fresh(db.session, other.id, T0)
    assert set(stored(db.session, other.id)["user"]) == {"v"}


def test_fresh_summaries_cost_one_query(db, workspace, app):
    ingest(db.session, workspace, "event", "insert",
           [{"event": "e", "user_id": "u", "timestamp": f"{T0}T10:00:00Z"}])
    marks = db.session.execute(sa.select(StaleKey.kind, StaleKey.keys)).all()
    assert sorted((kind, key) for kind, keys in marks for key in keys) == [
        ("day", T0.isoformat()), ("user", "u")]  # u has no account
    ws = workspace.id
    summaries.ensure_fresh(db.session, ws, T0)
    statements: list[str] = []
    sa.event.listen(_db.engine, "before_cursor_execute",
                    lambda *args: statements.append(args[2]))
    summaries.ensure_fresh(db.session, ws, T0)
    queries = [s for s in statements if s != "BEGIN"]  # SQLite's explicit BEGIN (database.py)
    assert len(queries) == 1 and queries[0].startswith("SELECT") and "stale_keys" in queries[0]


def test_refresh_while_senders_ingest(app, workspace):
    """Readers refresh while three senders ingest overlapping users and days: no error, no
    deadlock, and nothing a sender committed is missing after the last refresh."""
    ws_id, errors = workspace.id, []
    stop = threading.Event()

    def sender(seed: int) -> None:
        rng = random.Random(seed)
        try:
            with app.app_context():
                workspace_row = _db.session.get(type(workspace), ws_id)
                for _ in range(8):
                    ingest(_db.session, workspace_row, "event", "insert", _events(rng, 60),
                           protocol=None)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            with app.app_context():
                while not stop.is_set():
                    summaries.ensure_fresh(_db.session, ws_id, T0)
                    _db.session.commit()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(s,)) for s in (1, 2, 3)]
    reading = threading.Thread(target=reader)
    reading.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    reading.join(120)
    assert errors == []
    with app.app_context():
        assert _db.session.scalar(sa.select(sa.func.count()).select_from(Event)) > 1000
        check(_db.session, ws_id, T0)


def test_a_refresh_between_a_senders_mark_and_its_commit_keeps_the_mark(app, db, workspace):
    """Sender A's mark of account `a` is committed; sender B adds to `a` and marks it (on
    PostgreSQL its mark used to fold into A's row, there already); a refresh takes the mark
    before B commits, so it cannot see B's rows. B's mark must outlive that refresh."""
    ws = workspace.id
    when = datetime.combine(T0, time(10), timezone.utc)
    ingest(db.session, workspace, "event", "insert",
           [{"event": "e", "user_id": "u", "account_id": "a", "timestamp": when.isoformat()}])
    done: list[bool] = []

    def refresh() -> None:
        with app.app_context():
            done.append(summaries.ensure_fresh(_db.session, ws, T0))

    with Session(_db.engine) as sender_b:
        sender_b.connection(execution_options=database.WRITE_TRANSACTION)
        writes.add_activity(sender_b, ws, [(when, "a", "u", "e")])
        refresher = threading.Thread(target=refresh)
        refresher.start()
        refresher.join(2)  # PostgreSQL: done without waiting; SQLite: waits for B's commit
        sender_b.commit()
    refresher.join(60)
    assert done == [True]
    summaries.ensure_fresh(db.session, ws, T0)
    db.session.commit()
    assert db.session.scalar(sa.select(AccountMetrics.events_30d).where(
        AccountMetrics.workspace_id == ws, AccountMetrics.account_id == "a")) == 2
