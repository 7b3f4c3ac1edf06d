"""The ingestion engine, called directly, on SQLite and PostgreSQL."""
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from correlated.ingest.contract import Submission
from correlated.ingest.engine import Batch, Options, ingest, ingest_batches, submit
from correlated.models import Account, DailyActivity, Event, Field, IngestLog, User


def account(db, workspace, account_id):
    row = db.session.get(Account, (workspace.id, account_id))
    if row is not None:
        db.session.refresh(row)
    return row


def events(db, workspace):
    return db.session.scalars(sa.select(Event).where(Event.workspace_id == workspace.id)
                              .order_by(Event.timestamp)).all()


def field_type(db, workspace, obj, key):
    field = db.session.get(Field, (workspace.id, obj, key))
    return field.type if field else None


def test_mixed_batch_stores_good_rows_and_names_the_problem(db, workspace):
    result = ingest(db.session, workspace, "user", "upsert", [
        {"user_id": "u1", "email": "ada@acme.io", "account_id": "a1"},
        {"user_id": "u2", "email": "not-an-email"},
        {"email": "nobody@acme.io"},
        "a string",
        {"user_id": "u3", "email": "grace@acme.io"},
    ])
    assert result.accepted == 2 and result.created == 2
    reasons = {r.index: r.reason for r in result.rejected}
    assert reasons[1] == "email: not a valid email address: 'not-an-email'"
    assert reasons[2] == "user_id: required"
    assert reasons[3] == "row: expected a JSON object, got 'a string'"
    assert [r.id for r in result.rejected] == ["u2", None, None]
    stored = db.session.scalars(sa.select(User.user_id).order_by(User.user_id)).all()
    assert stored == ["u1", "u3"]


def test_required_fields_per_object(db, workspace):
    result = ingest(db.session, workspace, "event", "insert", [{"user_id": "u1"}])
    assert result.rejected[0].reason == "event: required; timestamp: required"
    result = ingest(db.session, workspace, "account", "upsert", [{"name": "No ID"}])
    assert result.rejected[0].reason == "account_id: required"


def test_aliases_match_case_insensitively(db, workspace):
    ingest(db.session, workspace, "account", "upsert",
           [{"Account_ID": 42, "Company_Name": "Acme", "Plan": "pro"}])
    stored = account(db, workspace, "42")
    assert stored.name == "Acme" and stored.traits == {"plan": "pro"}
    result = ingest(db.session, workspace, "account", "upsert",
                    [{"account_id": "1", "name": "A", "company_name": "B"}])
    assert result.rejected[0].reason == "company_name: maps to name, which name already gives"


def test_upsert_merges_dimensions_and_null_clears(db, workspace):
    ingest(db.session, workspace, "account", "upsert",
           [{"account_id": "a1", "name": "Acme", "plan": "pro", "region": "EMEA"}])
    result = ingest(db.session, workspace, "account", "upsert",
                    [{"account_id": "a1", "name": "Acme Inc", "plan": None, "seats": 12}])
    assert (result.created, result.updated) == (0, 1)
    stored = account(db, workspace, "a1")
    assert stored.name == "Acme Inc"
    assert stored.traits == {"region": "EMEA", "seats": 12}


def test_same_id_twice_in_a_batch_last_one_wins(db, workspace):
    result = ingest(db.session, workspace, "account", "upsert", [
        {"account_id": "a1", "name": "First", "plan": "free", "region": "EMEA"},
        {"account_id": "a1", "name": "Second", "plan": "pro"},
    ])
    assert result.accepted == 2
    stored = account(db, workspace, "a1")
    assert (stored.name, stored.traits) == ("Second", {"plan": "pro", "region": "EMEA"})


def test_update_only_rejects_unknown_ids(db, workspace):
    ingest(db.session, workspace, "account", "upsert", [{"account_id": "a1", "name": "Acme"}])
    result = ingest(db.session, workspace, "account", "update", [
        {"account_id": "a1", "plan": "enterprise"},
        {"account_id": "zz", "name": "Ghost"},
    ])
    assert result.accepted == 1 and result.updated == 1
    assert [(r.id, r.reason) for r in result.rejected] == [("zz", "no account with account_id zz")]
    assert account(db, workspace, "a1").traits == {"plan": "enterprise"}
    assert account(db, workspace, "a1").name == "Acme"  # update without a name keeps it
    assert account(db, workspace, "zz") is None


def test_double_underscore_nests(db, workspace):
    ingest(db.session, workspace, "user", "upsert", [
        {"user_id": "u1", "email": "a@b.io", "context__custom__phone": "1",
         "context__custom__fax": "2", "context__locale": "en"}])
    user = db.session.get(User, (workspace.id, "u1"))
    assert user.traits == {"context": {"custom": {"phone": "1", "fax": "2"}, "locale": "en"}}
    assert field_type(db, workspace, "user", "context") == "OBJECT"
    result = ingest(db.session, workspace, "user", "upsert",
                    [{"user_id": "u2", "email": "c@d.io", "a": 1, "a__b": 2}])
    assert "conflicts" in result.rejected[0].reason


def test_custom_fields_are_created_with_inferred_types(db, workspace):
    ingest(db.session, workspace, "account", "upsert", [{
        "account_id": "a1", "name": "Acme", "health": 0.8, "is_partner": True,
        "champion": "ada@acme.io", "kickoff": "2024-05-01", "synced": "2024-05-01T10:00:00Z",
        "tags": ["a", "b"], "notes": "hello"}])
    expected = {"health": "NUMBER", "is_partner": "BOOLEAN", "champion": "EMAIL",
                "kickoff": "DATE", "synced": "DATETIME", "tags": "ARRAY", "notes": "STRING"}
    assert {k: field_type(db, workspace, "account", k) for k in expected} == expected


def test_type_conflicts_reject_the_row(db, workspace):
    ingest(db.session, workspace, "account", "upsert",
           [{"account_id": "a1", "name": "Acme", "employees": 10, "seats": "25"}])
    assert account(db, workspace, "a1").traits == {"employees": 10, "seats": 25}
    result = ingest(db.session, workspace, "account", "upsert", [
        {"account_id": "a1", "name": "Acme", "employees": "many"},
        {"account_id": "a2", "name": "Beta", "employees": float("nan")},
        {"account_id": "a3", "name": "Gamma", "renewal_date": "soon"},
        {"account_id": "a4", "name": "Delta", "employees": 2**70},
    ])
    reasons = [r.reason for r in result.rejected]
    assert reasons == [
        "employees: expected a number, got 'many' (field type NUMBER)",
        "employees: NaN and Infinity are not valid JSON numbers",
        "renewal_date: expected a date (YYYY-MM-DD), got 'soon' (field type DATE)",
        "employees: number beyond 64-bit range",
    ]
    assert account(db, workspace, "a1").traits["employees"] == 10


def test_unknown_fields_rejected_when_creation_is_off(db, workspace):
    result = ingest(db.session, workspace, "account", "upsert",
                    [{"account_id": "a1", "name": "Acme", "plan": "pro", "tier": "gold"}],
                    Options(create_fields=False))
    assert result.rejected[0].reason == "tier: unknown field (creating custom fields is turned off)"
    assert account(db, workspace, "a1") is None
    workspace.allow_custom_fields = False
    db.session.commit()
    result = ingest(db.session, workspace, "account", "upsert",
                    [{"account_id": "a1", "name": "Acme", "plan": "pro"}])
    assert result.accepted == 1  # default fields are always known


def test_a_request_cannot_turn_on_what_the_workspace_turned_off(db, workspace):
    workspace.allow_custom_fields = False
    db.session.commit()
    result = ingest(db.session, workspace, "account", "upsert",
                    [{"account_id": "a1", "name": "Acme", "tier": "gold"}],
                    Options(create_fields=True))
    assert result.rejected[0].reason == "tier: unknown field (creating custom fields is turned off)"
    assert account(db, workspace, "a1") is None


@pytest.mark.parametrize("value, expected", [
    ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00+00:00"),
    ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00+00:00"),
    ("2024-05-01 10:00:00", "2024-05-01T10:00:00+00:00"),
    (1714557600, "2024-05-01T10:00:00+00:00"),
    (1714557600000, "2024-05-01T10:00:00+00:00"),
    ("1714557600", "2024-05-01T10:00:00+00:00"),
])
def test_timestamps_are_stored_in_utc(db, workspace, value, expected):
    result = ingest(db.session, workspace, "event", "insert",
                    [{"event": "sign_in", "user_id": "u1", "timestamp": value}])
    assert result.created == 1, result.rejected
    stored = events(db, workspace)[0].timestamp
    stored = stored if stored.tzinfo else stored.replace(tzinfo=timezone.utc)
    assert stored.isoformat() == expected


def test_bad_timestamp_names_the_problem(db, workspace):
    result = ingest(db.session, workspace, "event", "insert",
                    [{"event": "x", "user_id": "u1", "timestamp": "yesterday"}])
    assert result.rejected[0].reason == \
        "timestamp: expected ISO 8601 or epoch seconds/milliseconds, got 'yesterday'"


def test_repeated_event_id_is_stored_once(db, workspace):
    batch = [{"event": "sign_in", "user_id": "u1", "timestamp": 1714557600, "event_id": "e1"},
             {"event": "sign_in", "user_id": "u1", "timestamp": 1714557700, "event_id": "e1"}]
    first = ingest(db.session, workspace, "event", "insert", batch)
    again = ingest(db.session, workspace, "event", "insert", batch)
    assert (first.accepted, first.created, first.duplicates) == (2, 1, 1)
    assert (again.accepted, again.created, again.duplicates) == (2, 0, 2)
    assert len(events(db, workspace)) == 1
    total = db.session.scalar(sa.select(sa.func.sum(DailyActivity.count)))
    assert total == 1


def test_events_without_event_id_are_idempotent_too(db, workspace):
    row = {"event": "sign_in", "user_id": "u1", "timestamp": 1714557600, "page": "/home"}
    ingest(db.session, workspace, "event", "insert", [row])
    ingest(db.session, workspace, "event", "insert", [row])
    assert len(events(db, workspace)) == 1


def test_archive_and_restore(db, workspace):
    ingest(db.session, workspace, "account", "upsert", [{"account_id": "a1", "name": "Acme"}])
    result = ingest(db.session, workspace, "account", "remove", [{"account_id": "a1"}])
    assert result.removed == 1
    assert account(db, workspace, "a1").archived_at is not None
    ingest(db.session, workspace, "account", "upsert", [{"account_id": "a1", "name": "Acme"}])
    assert account(db, workspace, "a1").archived_at is None


def test_remove_can_delete_and_events_are_deleted_by_id(db, workspace):
    ingest(db.session, workspace, "user", "upsert", [{"user_id": "u1", "email": "a@b.io"}])
    ingest(db.session, workspace, "user", "remove", [{"user_id": "u1"}],
           Options(remove_action="delete"))
    assert db.session.get(User, (workspace.id, "u1")) is None
    ingest(db.session, workspace, "event", "insert", [
        {"event": "x", "user_id": "u1", "timestamp": 1714557600, "event_id": "e1"},
        {"event": "x", "user_id": "u1", "timestamp": 1714557600, "event_id": "e2"}])
    result = ingest(db.session, workspace, "event", "remove", [{"event_id": "e1"}, {"event": "x"}])
    assert result.removed == 1
    assert result.rejected[0].reason == "event_id: required to remove an event"
    assert [e.event_id for e in events(db, workspace)] == ["e2"]
    assert db.session.scalar(sa.select(sa.func.sum(DailyActivity.count))) == 1


def test_events_roll_up_to_the_users_account_and_follow_it(db, workspace):
    ingest(db.session, workspace, "event", "insert", [
        {"event": "sign_in", "user_id": "u1", "timestamp": 1714557600},
        {"event": "sign_in", "user_id": "u1", "timestamp": 1714557700, "account_id": "pinned"}])
    assert [e.account_id for e in events(db, workspace)] == [None, "pinned"]
    ingest(db.session, workspace, "user", "upsert",
           [{"user_id": "u1", "email": "a@b.io", "account_id": "a1"}])
    assert [e.account_id for e in events(db, workspace)] == ["a1", "pinned"]
    ingest(db.session, workspace, "event", "insert",
           [{"event": "sign_in", "user_id": "u1", "timestamp": 1714557800}])
    assert [e.account_id for e in events(db, workspace)] == ["a1", "pinned", "a1"]
    ingest(db.session, workspace, "user", "upsert",
           [{"user_id": "u1", "email": "a@b.io", "account_id": "a2"}])
    assert [e.account_id for e in events(db, workspace)] == ["a2", "pinned", "a2"]
    rollup = db.session.execute(sa.select(DailyActivity.account_id, DailyActivity.count)
                                .order_by(DailyActivity.account_id)).all()
    assert rollup == [("a2", 2), ("pinned", 1)]


def test_a_database_error_rolls_the_whole_batch_back(db, workspace):
    if db.engine.dialect.name == "sqlite":
        trigger = ["CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.event = 'boom' "
                   "BEGIN SELECT RAISE(ABORT, 'boom refused'); END"]
    else:
        # The PostgreSQL database outlives the test (and other tests use a boom() too): replace
        trigger = ["DROP TRIGGER IF EXISTS boom ON events",
                   "CREATE OR REPLACE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "IF NEW.event = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF; "
                   "RETURN NEW; END $$",
                   "CREATE TRIGGER boom BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION boom()"]
    with db.engine.begin() as conn:
        for statement in trigger:
            conn.exec_driver_sql(statement)
    try:
        _boom_batch_rolls_back(db, workspace)
    finally:
        # The session's read of events holds a lock on it until its transaction ends, and
        # DROP TRIGGER waits for that lock: end it first, or the test waits on itself.
        db.session.rollback()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS boom ON events"
                                 if db.engine.dialect.name != "sqlite" else
                                 "DROP TRIGGER IF EXISTS boom")


def _boom_batch_rolls_back(db, workspace) -> None:
    results = ingest_batches(db.session, workspace, [
        Batch("account", "upsert", [{"account_id": "a1", "name": "Acme"}]),
        Batch("event", "insert", [{"event": "ok", "user_id": "u1", "timestamp": 1714557600},
                                  {"event": "boom", "user_id": "u1", "timestamp": 1714557600}]),
    ])
    assert all(r.error and "boom refused" in r.error for r in results)
    assert [len(r.rejected) for r in results] == [1, 2]
    assert account(db, workspace, "a1") is None and events(db, workspace) == []
    log = db.session.scalars(sa.select(IngestLog)).one()
    assert "boom refused" in log.error and log.rows_rejected == 3


def test_every_call_writes_one_ingest_log_entry(db, workspace):
    rows = [{"account_id": f"a{i}", "name": f"N{i}", "blob": "x" * 2000} for i in range(60)]
    rows.append({"account_id": "bad"})
    submit(db.session, workspace, Submission(
        "segment", [Batch("account", "upsert", rows)],
        payload={"writeKey": "cor_secret", "batch": rows[:2]}))
    log = db.session.scalars(sa.select(IngestLog)).one()
    assert (log.protocol, log.object, log.operation) == ("segment", "account", "upsert")
    assert (log.rows_received, log.rows_accepted, log.rows_rejected) == (61, 60, 1)
    assert log.rejected_sample == [{"index": 60, "id": "bad", "reason": "name: required"}]
    assert log.payload["writeKey"] == "[redacted]" and len(log.payload["batch"]) == 2
    ingest(db.session, workspace, "account", "upsert", rows)
    big = db.session.scalars(sa.select(IngestLog).where(IngestLog.protocol == "api")).one()
    assert big.payload["truncated"] is True and big.payload["rows"] == 61
    assert 0 < len(big.payload["head"]) < 61


def test_unstorable_values_are_rejected_not_crashing(db, workspace):
    result = ingest(db.session, workspace, "event", "insert", [
        {"event": "x", "user_id": "u1", "timestamp": 1714557600, "note": "nul\x00byte"},
        {"event": "x", "user_id": "u1", "timestamp": 1714557600, "deep": _nested(40)},
        {"event": "x", "user_id": "u1", "timestamp": 1714557600, "bad": "\ud800"},
        {"event": "x", "user_id": "u\x01", "timestamp": 1714557600},
        {"event": "ok", "user_id": "u1", "timestamp": 1714557600, "emoji": "ünïcødé ✓"},
    ])
    reasons = [r.reason for r in result.rejected]
    assert reasons == ["note: contains a NUL character",
                       "deep: nested deeper than 32 levels",
                       "bad: contains invalid unicode (a lone surrogate)",
                       "user_id: contains control characters"]
    assert [e.properties for e in events(db, workspace)] == [{"emoji": "ünïcødé ✓"}]


def _nested(depth):
    value = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_workspaces_do_not_see_each_other(db, tenant, other_tenant):
    ingest(db.session, tenant.workspace, "account", "upsert", [{"account_id": "a1", "name": "A"}])
    ingest(db.session, other_tenant.workspace, "account", "update",
           [{"account_id": "a1", "name": "Hijack"}])
    assert account(db, tenant.workspace, "a1").name == "A"
    assert account(db, other_tenant.workspace, "a1") is None


def test_received_time_default_only_where_a_protocol_asks(db, workspace):
    now = datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    result = ingest(db.session, workspace, "event", "insert", [{"event": "x", "user_id": "u"}],
                    Options(default_timestamp=now))
    assert result.created == 1
    result = ingest(db.session, workspace, "event", "insert",
                    [{"event_type": "y", "account_id": "a1", "time": "2024-05-01"}],
                    Options(event_needs_user=False))
    assert result.created == 1, result.rejected


def test_the_openapi_document_allows_the_event_names_the_engine_stores(db, workspace):
    from correlated.protocols import schemas

    document = schemas.openapi()["components"]["schemas"]
    longest = document["EventIn"]["properties"]["event"]["maxLength"]
    rows = [{"event": "e" * n, "user_id": "u1", "timestamp": 1714557600, "event_id": f"x{n}"}
            for n in (longest, longest + 1)]
    result = ingest(db.session, workspace, "event", "insert", rows)
    assert result.accepted == 1
    assert [r.reason for r in result.rejected] == [f"event: longer than {longest} characters"]
