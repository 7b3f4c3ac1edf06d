"""The one timestamp parser (warehouse renderings, BigQuery's wrapper, ambiguous forms refused)
and the engine's future limit, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from correlated.ingest import fields
from correlated.ingest.engine import ingest
from correlated.ingest.timestamps import Invalid, parse_timestamp
from correlated.models import Account, Event, Field

WHEN = datetime(2024, 1, 15, 10, 32, tzinfo=timezone.utc)

# (as the warehouse renders it, what it means)
RENDERINGS = [
    ("2024-01-15 10:32:00.000 +0000", WHEN),  # Snowflake TIMESTAMP_TZ
    ("2024-01-15 10:32:00.000 -0800", WHEN + timedelta(hours=8)),
    ("2024-01-15 10:32:00.123456789 +0000", WHEN.replace(microsecond=123456)),  # nanoseconds
    ("2024-01-15 10:32:00.000000 UTC", WHEN),  # BigQuery TIMESTAMP
    ("2024-01-15 10:32:00 UTC", WHEN),
    ("2024-01-15 10:32:00+00", WHEN),  # PostgreSQL / Redshift timestamptz
    ("2024-01-15 10:32:00.5-08", WHEN + timedelta(hours=8, microseconds=500000)),
    ("2024-01-15 10:32:00 +05:30", WHEN - timedelta(hours=5, minutes=30)),
    ("2024-01-15 10:32:00", WHEN),  # TIMESTAMP_NTZ / DATETIME: no zone means UTC
    ("2024-01-15T10:32:00Z", WHEN),
    ("2024-01-15T10:32:00.000 Z", WHEN),
    ({"value": "2024-01-15T10:32:00.000Z"}, WHEN),  # BigQuery's client wrapper
    ({"value": "2024-01-15 10:32:00.000000 UTC"}, WHEN),
    ("2024-01-15", WHEN.replace(hour=0, minute=0)),
    (1705314720, WHEN),
    (1705314720000, WHEN),
    ("1705314720", WHEN),
]


@pytest.mark.parametrize("value, expected", RENDERINGS, ids=[repr(v) for v, _ in RENDERINGS])
def test_warehouse_renderings_parse_to_the_same_instant(value, expected):
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize("value, reason", [
    ("2024-01-15 10:32:00 EST", "time zone 'EST' is ambiguous"),
    ("2024-01-15 10:32:00 IST", "time zone 'IST' is ambiguous"),
    ("01/02/2024 10:32", "day and month order is ambiguous: use YYYY-MM-DD"),
    ("15.01.2024", "day and month order is ambiguous"),
    ("2024-01-15 10:32:00 America/New_York", "expected ISO 8601 or epoch"),
    ("Jan 15 2024", "expected ISO 8601 or epoch"),
    ("yesterday", "expected ISO 8601 or epoch seconds/milliseconds, got 'yesterday'"),
    ({"value": "yesterday"}, "expected ISO 8601"),
    ({"value": "2024-01-15", "type": "DATE"}, "expected ISO 8601"),  # not the wrapper: an object
    (True, "expected ISO 8601"),
])
def test_ambiguous_and_unknown_forms_are_refused_with_what_to_send(value, reason):
    with pytest.raises(Invalid) as refused:
        parse_timestamp(value)
    assert reason in str(refused.value)


def test_new_fields_take_their_type_from_the_renderings():
    assert fields.infer_type("2024-01-15 10:32:00.000 +0000") == "DATETIME"
    assert fields.infer_type("2024-01-15 10:32:00.000000 UTC") == "DATETIME"
    assert fields.infer_type("2024-01-15 10:32:00+00") == "DATETIME"
    assert fields.infer_type({"value": "2024-01-15T10:32:00.000Z"}) == "DATETIME"
    assert fields.infer_type({"value": "2024-01-15"}) == "DATE"
    assert fields.infer_type({"value": "EMEA"}) == "OBJECT"  # only dates and times unwrap
    assert fields.coerce({"value": "2024-01-15"}, "DATE") == "2024-01-15"
    assert fields.coerce("2024-01-15 10:32:00+00", "DATE") == "2024-01-15"
    assert fields.coerce({"value": "2024-01-15 10:32:00.000000 UTC"}, "DATETIME") == \
        "2024-01-15T10:32:00+00:00"


def events(db, workspace):
    db.session.rollback()
    return db.session.scalars(sa.select(Event).where(Event.workspace_id == workspace.id)
                              .order_by(Event.event_id)).all()


def as_utc(moment):
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # SQLite: naive


def test_the_engine_stores_every_rendering_as_one_instant(db, workspace):
    rows = [{"event_id": f"e{i:02}", "event": "Signed In", "user_id": "u1", "timestamp": value}
            for i, (value, _expected) in enumerate(RENDERINGS)]
    result = ingest(db.session, workspace, "event", "insert", rows)
    assert result.rejected == [] and result.created == len(RENDERINGS)
    stored = {e.event_id: as_utc(e.timestamp) for e in events(db, workspace)}
    assert stored == {f"e{i:02}": expected for i, (_v, expected) in enumerate(RENDERINGS)}


def test_dimensions_read_the_renderings_too(db, workspace):
    result = ingest(db.session, workspace, "account", "upsert", [
        {"account_id": "a1", "name": "Acme", "renewal_date": {"value": "2025-03-01"},
         "created_at": "2024-01-15 10:32:00.000 +0000",
         "last_import": {"value": "2024-01-15 10:32:00.000000 UTC"},
         "closed_at": "2024-01-15 10:32:00+00"},
        {"account_id": "a2", "name": "Globex", "renewal_date": "01/03/2025"}])
    assert [(r.id, r.reason) for r in result.rejected] == [
        ("a2", "renewal_date: expected a date (YYYY-MM-DD), got '01/03/2025' (field type DATE)")]
    db.session.rollback()
    a1 = db.session.get(Account, (workspace.id, "a1"))
    assert a1.traits == {"renewal_date": "2025-03-01", "created_at": "2024-01-15T10:32:00+00:00",
                         "last_import": "2024-01-15T10:32:00+00:00",
                         "closed_at": "2024-01-15T10:32:00+00:00"}
    created = {f.key: f.type for f in db.session.scalars(
        sa.select(Field).where(Field.workspace_id == workspace.id, Field.object == "account"))}
    assert (created["last_import"], created["closed_at"]) == ("DATETIME", "DATETIME")


def test_events_beyond_the_future_limit_are_rejected_naming_the_field(db, workspace):
    now = datetime.now(timezone.utc)
    rows = [{"event_id": "soon", "event": "x", "user_id": "u1",
             "timestamp": (now + timedelta(hours=23)).isoformat()},
            {"event_id": "far", "event": "x", "user_id": "u1", "timestamp": "2099-01-01"},
            {"event_id": "epoch", "event": "x", "user_id": "u1", "timestamp": 4102444800},
            {"event_id": "both", "event": "x", "timestamp": "2099-01-01T00:00:00Z"}]
    result = ingest(db.session, workspace, "event", "insert", rows)
    assert [(r.id, r.reason) for r in result.rejected] == [
        ("far", "timestamp: 2099-01-01T00:00:00+00:00 is more than 24 hours in the future (the "
                "limit is CORRELATED_MAX_FUTURE_HOURS)"),
        ("epoch", "timestamp: 2100-01-01T00:00:00+00:00 is more than 24 hours in the future "
                  "(the limit is CORRELATED_MAX_FUTURE_HOURS)"),
        ("both", "timestamp: 2099-01-01T00:00:00+00:00 is more than 24 hours in the future (the "
                 "limit is CORRELATED_MAX_FUTURE_HOURS); user_id: required")]
    assert [e.event_id for e in events(db, workspace)] == ["soon"]
    # Removing an event is not judged by its timestamp.
    removed = ingest(db.session, workspace, "event", "remove",
                     [{"event_id": "soon", "timestamp": "2099-01-01"}])
    assert removed.rejected == [] and events(db, workspace) == []


def test_the_future_limit_is_a_setting(db, workspace, monkeypatch):
    monkeypatch.setenv("CORRELATED_MAX_FUTURE_HOURS", "1")
    soon = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
    result = ingest(db.session, workspace, "event", "insert",
                    [{"event_id": "e1", "event": "x", "user_id": "u1", "timestamp": soon}])
    assert result.rejected[0].reason.endswith(
        "is more than 1 hours in the future (the limit is CORRELATED_MAX_FUTURE_HOURS)")
    monkeypatch.setenv("CORRELATED_MAX_FUTURE_HOURS", "72")
    result = ingest(db.session, workspace, "event", "insert",
                    [{"event_id": "e1", "event": "x", "user_id": "u1", "timestamp": soon}])
    assert result.rejected == [] and [e.event_id for e in events(db, workspace)] == ["e1"]
