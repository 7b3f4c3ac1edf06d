"""The bulk write paths behind POST /api/v1/events, on both databases: what they store must
equal what the events say, however the rows arrive."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from correlated import database
from correlated.ingest.engine import Batch, ingest, ingest_batches
from correlated.models import DailyActivity, Event

START = datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc)


def events(count: int, offset: int = 0) -> list[dict]:
    return [{"event_id": f"e{i}", "event": ("sign_in", "export")[i % 2], "user_id": f"u{i % 3}",
             "account_id": None if i % 5 == 0 else "a1", "plan": "pro",
             "timestamp": (START + timedelta(minutes=20 * i)).isoformat()}
            for i in range(offset, offset + count)]


def activity(db, workspace) -> dict[tuple, tuple]:
    rows = db.session.execute(sa.select(DailyActivity).where(
        DailyActivity.workspace_id == workspace.id)).scalars()
    return {(str(r.day), r.account_id, r.user_id, r.event):
            (r.count, r.last_at.replace(tzinfo=timezone.utc) if r.last_at.tzinfo is None
             else r.last_at) for r in rows}


def activity_from_events(db, workspace) -> dict[tuple, tuple]:
    """The roll-up recomputed from the events table, the way the engine rebuilds it."""
    e = Event.__table__
    day = database.day(db.session.connection(), e.c.timestamp)
    query = (sa.select(day, sa.func.coalesce(e.c.account_id, ""),
                       sa.func.coalesce(e.c.user_id, ""), e.c.event, sa.func.count(),
                       sa.func.max(e.c.timestamp))
             .where(e.c.workspace_id == workspace.id).group_by(day, e.c.account_id, e.c.user_id,
                                                               e.c.event))
    out = {}
    for d, account, user, name, count, last in db.session.execute(query):
        last = datetime.fromisoformat(last) if isinstance(last, str) else last
        out[(str(d), account, user, name)] = (count, last.replace(tzinfo=timezone.utc)
                                              if last.tzinfo is None else last)
    return out


def test_roll_up_matches_the_events_across_batches_and_days(db, workspace):
    first = ingest(db.session, workspace, "event", "insert", events(120))
    again = ingest(db.session, workspace, "event", "insert", events(120, offset=60))
    assert (first.created, again.created, again.duplicates) == (120, 60, 60)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == 180
    assert activity(db, workspace) == activity_from_events(db, workspace)
    assert sum(count for count, _ in activity(db, workspace).values()) == 180


def test_two_event_batches_in_one_unit_of_work(db, workspace):
    results = ingest_batches(db.session, workspace, [
        Batch("event", "insert", events(30)), Batch("event", "insert", events(30, offset=20))])
    assert [(r.created, r.duplicates) for r in results] == [(30, 0), (20, 10)]
    assert activity(db, workspace) == activity_from_events(db, workspace)
    assert sum(count for count, _ in activity(db, workspace).values()) == 50


def test_properties_and_accounts_are_stored_as_sent(db, workspace):
    ingest(db.session, workspace, "user", "upsert", [{"user_id": "u1", "email": "u1@a.io",
                                                      "account_id": "a9"}])
    ingest(db.session, workspace, "event", "insert", [
        {"event_id": "x", "event": "e", "user_id": "u1", "timestamp": 0,
         "meta": {"nested": [1, "two", None], "ok": True}, "note": "é\u2603"}])
    stored = db.session.get(Event, (workspace.id, "x"))
    assert stored.properties == {"meta": {"nested": [1, "two", None], "ok": True},
                                 "note": "é\u2603"}
    assert (stored.account_id, stored.account_inferred) == ("a9", True)


def test_a_failed_batch_leaves_nothing_behind_for_the_next(db, workspace):
    """The staging table (PostgreSQL) and the roll-up roll back with the batch."""
    refuse_events(db, True)
    try:
        failed = ingest(db.session, workspace, "event", "insert", events(10))
    finally:
        refuse_events(db, False)
    assert failed.error and "refused" in failed.error and failed.created == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == 0
    assert activity(db, workspace) == {}
    ok = ingest(db.session, workspace, "event", "insert", events(10, offset=5))
    assert (ok.created, ok.error) == (10, None)
    assert activity(db, workspace) == activity_from_events(db, workspace)


def refuse_events(db, on: bool) -> None:
    """A real database fault: a trigger that refuses the event e7."""
    db.session.rollback()
    sqlite = db.engine.dialect.name == "sqlite"
    if sqlite:
        statements = ["CREATE TRIGGER refuse_events BEFORE INSERT ON events WHEN "
                      "NEW.event_id = 'e7' BEGIN SELECT RAISE(ABORT, 'refused'); END"] if on \
            else ["DROP TRIGGER IF EXISTS refuse_events"]
    else:
        statements = [
            "CREATE FUNCTION refuse_events() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.event_id = 'e7' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER refuse_events BEFORE INSERT ON events FOR EACH ROW "
            "EXECUTE FUNCTION refuse_events()"] if on else [
            "DROP TRIGGER IF EXISTS refuse_events ON events",
            "DROP FUNCTION IF EXISTS refuse_events()"]
    with db.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def test_marking_a_key_used_never_fails_the_request(db, tenant):
    """On SQLite, the read that checked the key pins a snapshot; when another writer commits
    before the once-a-minute `last_used_at` update, that update cannot take the write lock."""
    from correlated.auth import touch_key, verify_key
    from correlated.models import ApiKey

    key = verify_key(db.session, tenant.key)  # this session's read transaction starts here
    with db.engine.begin() as other:  # another request's write commits in between
        other.execute(sa.update(ApiKey).values(name="renamed"))
    key.last_used_at = None
    touch_key(db.session, key)  # must not raise
    assert key.workspace_id == tenant.id
