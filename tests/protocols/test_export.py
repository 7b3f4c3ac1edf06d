"""The export side of the account and user lists (include=, updated_since= that follows
metrics and signals, next_updated_since), through the test client on both databases."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest

from correlated.analytics.summaries import ensure_fresh
from correlated.ingest.engine import ingest
from correlated.models import utcnow
from correlated.protocols import export
from correlated.signals import evaluate

FREE = {"name": "Free plan", "category": "conversion",
        "conditions": [{"field": "plan", "op": "eq", "value": "free"}]}


def seed(db, ws) -> None:
    ingest(db.session, ws, "account", "upsert", [
        {"account_id": f"a{i}", "name": f"Acme {i}", "plan": ("free", "pro")[i % 2]}
        for i in range(6)])
    ingest(db.session, ws, "user", "upsert", [
        {"user_id": f"u{i}", "email": f"u{i}@x.example", "account_id": f"a{i % 6}"}
        for i in range(6)])
    db.session.commit()


def get(client, tenant, path, **params):
    response = client.get(f"/api/v1{path}", query_string=params, headers=tenant.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def add_signal(client, tenant, body=FREE) -> str:
    made = client.post("/api/v1/signals", json=body, headers=tenant.headers)
    assert made.status_code == 201, made.get_json()
    return made.get_json()["id"]


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_include_signals_and_metrics(client, db, tenant):
    seed(db, tenant.workspace)
    ingest(db.session, tenant.workspace, "event", "insert", [
        {"event": "login", "user_id": "u0", "timestamp": stamp(utcnow() - timedelta(hours=1))}])
    signal_id = add_signal(client, tenant)
    evaluate.run(db.session, tenant.id, signal_id, utcnow(), force=True)
    data = get(client, tenant, "/accounts", include="signals,metrics").get_json()["data"]
    by_id = {a["account_id"]: a for a in data}
    assert [s["name"] for s in by_id["a0"]["signals"]] == ["Free plan"]
    assert by_id["a0"]["signals"][0]["id"] == signal_id
    assert by_id["a0"]["signals"][0]["category"] == "conversion"
    assert by_id["a1"]["signals"] == []
    assert by_id["a0"]["metrics"]["events_30d"] == 1
    assert by_id["a0"]["metrics"]["active_users_7d"] == 1
    assert by_id["a1"]["metrics"] == {"active_users_7d": 0, "active_users_30d": 0,
                                      "events_30d": 0, "events_prev_30d": 0, "last_seen": None}
    plain = get(client, tenant, "/accounts").get_json()["data"]
    assert "signals" not in plain[0] and "metrics" not in plain[0]
    users = get(client, tenant, "/users", include="signals").get_json()["data"]
    assert all(u["signals"] == [] for u in users)  # the signal is of accounts


def test_an_unknown_include_is_a_400_naming_it(client, tenant):
    response = client.get("/api/v1/accounts?include=signals,score", headers=tenant.headers)
    assert response.status_code == 400
    assert "include: 'score' not available" in response.get_json()["error"]
    assert "metrics, signals" in response.get_json()["error"]


def test_updated_since_follows_signal_transitions(client, db, tenant):
    seed(db, tenant.workspace)
    signal_id = add_signal(client, tenant)
    later = utcnow()
    assert get(client, tenant, "/accounts", updated_since=stamp(later)).get_json()["data"] == []
    evaluate.run(db.session, tenant.id, signal_id, utcnow(), force=True)
    data = get(client, tenant, "/accounts", updated_since=stamp(later)).get_json()["data"]
    assert [a["account_id"] for a in data] == ["a0", "a2", "a4"]  # the free ones entered
    assert all(parse(a["updated_at"]) >= later for a in data)
    # A record leaving the signal moves too.
    ingest(db.session, tenant.workspace, "account", "update", [{"account_id": "a2",
                                                                "plan": "pro"}])
    db.session.commit()
    after_change = utcnow()
    evaluate.run(db.session, tenant.id, signal_id, utcnow(), force=True)
    moved = get(client, tenant, "/accounts", updated_since=stamp(after_change),
                include="signals").get_json()["data"]
    assert [(a["account_id"], a["signals"]) for a in moved] == [("a2", [])]


def test_updated_since_follows_metrics(client, db, tenant):
    seed(db, tenant.workspace)
    ensure_fresh(db.session, tenant.id)
    later = utcnow()
    ingest(db.session, tenant.workspace, "event", "insert", [
        {"event": "login", "user_id": "u3", "timestamp": stamp(utcnow())}])
    db.session.commit()
    ensure_fresh(db.session, tenant.id)  # what the worker does after a sync
    accounts = get(client, tenant, "/accounts", updated_since=stamp(later)).get_json()["data"]
    users = get(client, tenant, "/users", updated_since=stamp(later)).get_json()["data"]
    assert [a["account_id"] for a in accounts] == ["a3"]
    assert [u["user_id"] for u in users] == ["u3"]
    assert parse(accounts[0]["updated_at"]) >= later


def test_incremental_pull_pages_once_and_hands_the_next_start(client, db, tenant):
    ingest(db.session, tenant.workspace, "account", "upsert", [
        {"account_id": f"a{i:03d}", "name": f"A {i}"} for i in range(25)])
    db.session.commit()
    before = utcnow()
    seen, cursor, starts = [], "", set()
    while cursor is not None:
        page = get(client, tenant, "/accounts", limit=10, cursor=cursor,
                   updated_since="2000-01-01").get_json()
        seen += [a["account_id"] for a in page["data"]]
        starts.add(page["next_updated_since"])
        cursor = page["next_cursor"]
        # A record changing during the pull neither disappears nor repeats within it.
        ingest(db.session, tenant.workspace, "account", "update",
               [{"account_id": "a000", "name": "renamed"}])
        db.session.commit()
    assert seen == [f"a{i:03d}" for i in range(25)]
    assert len(starts) == 1  # every page names the first page's time
    start = parse(starts.pop())
    assert before - export.OVERLAP <= start <= utcnow() - export.OVERLAP
    again = get(client, tenant, "/accounts", updated_since=stamp(start)).get_json()["data"]
    assert "a000" in [a["account_id"] for a in again]


def test_csv_with_includes(client, db, tenant):
    seed(db, tenant.workspace)
    signal_id = add_signal(client, tenant)
    add_signal(client, tenant, {**FREE, "name": "Pro plan",
                                "conditions": [{"field": "plan", "op": "eq", "value": "pro"}]})
    evaluate.run(db.session, tenant.id, signal_id, utcnow(), force=True)
    text = get(client, tenant, "/accounts", format="csv",
               include="metrics,signals").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["account_id"] for r in rows] == [f"a{i}" for i in range(6)]
    assert {"metrics.events_30d", "signals.Free plan", "signals.Pro plan"} <= set(rows[0])
    assert rows[0]["signals.Free plan"] and not rows[1]["signals.Free plan"]
    assert rows[0]["signals.Pro plan"] == ""  # never evaluated: no members
    assert rows[0]["metrics.events_30d"] == "0"
    only = get(client, tenant, "/accounts", format="csv", include="signals",
               updated_since="2999-01-01").get_data(as_text=True)
    assert len(list(csv.reader(io.StringIO(only)))) == 1  # the header alone


def test_another_workspace_sees_none_of_the_blocks(client, db, tenant, other_tenant):
    seed(db, tenant.workspace)
    seed(db, other_tenant.workspace)
    signal_id = add_signal(client, tenant)
    evaluate.run(db.session, tenant.id, signal_id, utcnow(), force=True)
    theirs = get(client, other_tenant, "/accounts", include="signals",
                 updated_since=stamp(utcnow() - timedelta(seconds=2))).get_json()["data"]
    assert all(a["signals"] == [] for a in theirs)


@pytest.mark.parametrize("collection", ["accounts", "users"])
def test_the_openapi_document_describes_the_export(app, client, collection):
    document = client.get("/api/v1/openapi.json").get_json()
    parameters = document["paths"][f"/api/v1/{collection}"]["get"]["parameters"]
    names = {p["name"] for p in parameters}
    assert {"include", "updated_since", "cursor", "format"} <= names
    listed = document["components"]["schemas"]["AccountListed" if collection == "accounts"
                                                else "UserListed"]
    assert {"metrics", "signals", "updated_at"} <= set(listed["properties"])
    page = document["components"]["schemas"]["AccountPage"]
    assert "next_updated_since" in page["properties"]
