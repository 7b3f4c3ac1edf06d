"""Webhook connections (Variance style) over real HTTP: header, payload, mapping, matching."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests
import sqlalchemy as sa

from correlated.protocols.connections import create_connection, update_connection
from correlated.ingest.engine import ingest
from correlated.models import Account, Event, IngestLog, User, WebhookConnection


def fresh(db):
    db.session.rollback()  # a fresh snapshot: the server wrote from its own threads


def accounts(db, workspace):
    fresh(db)
    rows = db.session.scalars(sa.select(Account).where(Account.workspace_id == workspace.id)
                              .order_by(Account.account_id))
    return {a.account_id: a for a in rows}


def users(db, workspace):
    fresh(db)
    rows = db.session.scalars(sa.select(User).where(User.workspace_id == workspace.id))
    return {u.user_id: u for u in rows}


def events(db, workspace):
    fresh(db)
    return db.session.scalars(sa.select(Event).where(Event.workspace_id == workspace.id)
                              .order_by(Event.event_id)).all()


@pytest.fixture
def connect(db, workspace, live_server):
    """Create a connection and return a sender for its URL with its header."""

    def make(obj="account", enabled=True, **settings):
        connection = create_connection(db.session, workspace.id, f"{obj} sync", obj, **settings)
        update_connection(connection, {"enabled": enabled})
        db.session.commit()
        url = f"{live_server}/webhooks/{connection.id}"
        token = connection.auth_token

        def send(body, method="POST", headers=None):
            headers = {"Authorization": token} if headers is None else headers
            return requests.request(method, url, json=body, headers=headers, timeout=30)

        send.connection = connection
        send.url = url
        return send

    return make


def seed_accounts(db, workspace, *rows):
    result = ingest(db.session, workspace, "account", "upsert", list(rows))
    assert not result.rejected


def test_a_disabled_connection_keeps_the_latest_payload_and_writes_nothing(connect, db, workspace):
    send = connect(enabled=False, mapping={"id_field": "sfdc_id"})
    payload = [{"sfdc_id": "a1", "name": "Acme", "api_token": "s3cret"}]
    response = send(payload)
    assert response.status_code == 202
    assert response.json()["enabled"] is False and response.json()["written"] == 0
    assert accounts(db, workspace) == {}
    assert db.session.scalars(sa.select(IngestLog)).all() == []
    connection = db.session.get(WebhookConnection, (workspace.id, send.connection.id))
    assert connection.latest_payload == [{"sfdc_id": "a1", "name": "Acme",
                                          "api_token": "[redacted]"}]
    assert connection.latest_payload_at is not None


def test_enforced_header_is_checked_in_constant_time(connect, db, workspace):
    send = connect()
    row = [{"account_id": "a1", "name": "Acme"}]
    assert send(row, headers={}).status_code == 401
    assert send(row, headers={"Authorization": "whk_wrong"}).status_code == 401
    token = send.connection.auth_token
    assert send(row, headers={"Authorization": token[:-1]}).status_code == 401
    assert accounts(db, workspace) == {}
    assert send.connection.latest_payload is None  # a refused request leaves no trace
    assert send(row, headers={"Authorization": f"Bearer {token}"}).status_code == 201
    assert send(row).status_code == 201


def test_enforcement_off_accepts_requests_without_the_header(connect, db, workspace):
    send = connect(enforce_auth=False)
    assert send([{"account_id": "a1", "name": "Acme"}], headers={}).status_code == 201
    assert list(accounts(db, workspace)) == ["a1"]


def test_an_unknown_connection_is_404(live_server):
    response = requests.post(f"{live_server}/webhooks/nope", json=[], timeout=10)
    assert response.status_code == 404 and "error" in response.json()


def test_wrapper_path_and_mapped_fields(connect, db, workspace):
    send = connect(mapping={"wrapper": "data.rows", "id_field": "sfdc.id",
                            "name_field": "company"})
    body = {"sync": "s1", "data": {"rows": [
        {"sfdc": {"id": "a1", "region": "EU"}, "company": "Acme", "plan": "pro", "org_id": 7},
        {"sfdc": {"id": "a2"}, "company": "Beta", "account_id": "ignored", "seats": 3},
    ]}}
    response = send(body)
    assert response.status_code == 201, response.text
    stored = accounts(db, workspace)
    assert sorted(stored) == ["a1", "a2"]
    assert stored["a1"].name == "Acme"
    # Unmapped keys are dimensions, even those other protocols read as aliases (org_id).
    assert stored["a1"].traits == {"plan": "pro", "sfdc": {"region": "EU"}, "org_id": 7}
    # "account_id" is not mapped but the mapping gives the ID: the mapping wins.
    assert stored["a2"].traits == {"seats": 3}
    missing = send({"data": {"items": []}})
    assert missing.status_code == 422
    assert missing.json()["error"] == "wrapper path 'data.rows': not found in the payload"


def test_id_first_then_name_fallback(connect, db, workspace):
    seed_accounts(db, workspace, {"account_id": "crm-1", "name": "Acme", "plan": "free"},
                  {"account_id": "crm-2", "name": "Beta"},
                  {"account_id": "crm-3", "name": "Twin"}, {"account_id": "crm-4", "name": "Twin"})
    send = connect(mapping={"id_field": "warehouse_id", "name_field": "name"})
    response = send([
        {"warehouse_id": "crm-2", "name": "Beta Renamed", "plan": "pro"},  # ID matches
        {"warehouse_id": "wh-9", "name": "Acme", "plan": "enterprise"},   # name matches
        {"name": "Acme", "seats": 40},                                    # name only
        {"warehouse_id": "wh-new", "name": "Newco"},                      # neither: created
        {"name": "Nobody"},                                               # nothing to go on
        {"warehouse_id": "wh-x", "name": "Twin"},                         # two named Twin
    ])
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["created"], body["updated"]) == (1, 2)
    rejected = {r["index"]: r["reason"] for r in body["rejected"]}
    assert rejected == {
        4: "account_id: required (no account with name 'Nobody' to match)",
        5: "name: 2 accounts have name 'Twin'; send the account_id to tell them apart",
    }
    stored = accounts(db, workspace)
    assert sorted(stored) == ["crm-1", "crm-2", "crm-3", "crm-4", "wh-new"]
    assert stored["crm-1"].traits == {"plan": "enterprise", "seats": 40}
    assert stored["crm-2"].name == "Beta Renamed" and stored["crm-2"].traits == {"plan": "pro"}


def test_name_lookups_take_one_query_per_batch(connect, db, workspace, app):
    seed_accounts(db, workspace, *[{"account_id": f"crm-{i}", "name": f"Co {i}"}
                                   for i in range(300)])
    send = connect(mapping={"id_field": "wid", "name_field": "company"})
    statements = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        response = send([{"wid": f"wh-{i}", "company": f"Co {i}"} for i in range(300)])
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    assert response.status_code == 201 and response.json()["updated"] == 300
    by_name = [s for s in statements if "FROM accounts" in s and "accounts.name IN" in s]
    assert len(by_name) == 1
    assert sorted(accounts(db, workspace)) == sorted(f"crm-{i}" for i in range(300))


def test_update_only_with_an_unknown_record(connect, db, workspace):
    seed_accounts(db, workspace, {"account_id": "a1", "name": "Acme"})
    send = connect(behavior="update")
    unknown = send([{"account_id": "zz", "name": "Ghost"}])
    assert unknown.status_code == 422
    assert unknown.json()["rejected"] == [{"index": 0, "id": "zz",
                                           "reason": "no account with account_id zz"}]
    both = send([{"account_id": "zz", "plan": "pro"}, {"account_id": "a1", "plan": "pro"}])
    assert both.status_code == 201 and both.json()["updated"] == 1
    assert [r["index"] for r in both.json()["rejected"]] == [0]
    assert sorted(accounts(db, workspace)) == ["a1"]


def test_custom_property_matching_updates_only(connect, db, workspace):
    seed_accounts(db, workspace, {"account_id": "a1", "name": "Acme", "domain": "acme.io"},
                  {"account_id": "a2", "name": "Beta", "domain": "beta.io"})
    with pytest.raises(Exception, match="behavior 'update' only"):
        connect(mapping={"match_property": "domain", "match_field": "website"})
    send = connect(behavior="update", mapping={"match_property": "domain",
                                               "match_field": "website"})
    response = send([{"website": "acme.io", "plan": "pro"}, {"website": "gone.io", "plan": "x"}])
    assert response.status_code == 201, response.text
    assert response.json()["rejected"] == [
        {"index": 1, "id": None, "reason": "domain: no account with domain 'gone.io'"}]
    stored = accounts(db, workspace)
    assert stored["a1"].traits == {"domain": "acme.io", "plan": "pro"}
    assert stored["a2"].traits == {"domain": "beta.io"}


def test_users_match_on_email_and_link_to_an_account_by_name(connect, db, workspace):
    seed_accounts(db, workspace, {"account_id": "a1", "name": "Acme"})
    ingest(db.session, workspace, "user", "upsert",
           [{"user_id": "u1", "email": "Ada@Acme.io"}])
    send = connect("user", mapping={"id_field": "contact_id", "email_field": "mail",
                                    "account_name_field": "company"})
    response = send([
        {"contact_id": "c-77", "mail": "ada@acme.io", "company": "Acme", "title": "CTO"},
        {"contact_id": "c-2", "mail": "grace@acme.io", "company": "Acme"},
        {"contact_id": "c-3", "mail": "x@y.io", "company": "Unknown Inc"},
    ])
    assert response.status_code == 201, response.text
    assert response.json()["rejected"] == [
        {"index": 2, "id": "c-3", "reason": "account: no account named 'Unknown Inc'"}]
    stored = users(db, workspace)
    assert sorted(stored) == ["c-2", "u1"]
    assert stored["u1"].account_id == "a1" and stored["u1"].traits == {"title": "CTO"}
    assert stored["c-2"].account_id == "a1"


def test_event_mapping_and_event_id_deduplication_across_retries(connect, db, workspace):
    seed_accounts(db, workspace, {"account_id": "a1", "name": "Acme"})
    ingest(db.session, workspace, "user", "upsert",
           [{"user_id": "u1", "email": "ada@acme.io", "account_id": "a1"}])
    send = connect("event", mapping={"event_field": "type", "user_id_field": "contact",
                                     "account_id_field": "org", "timestamp_field": "at",
                                     "event_id_field": "uuid"})
    batch = [
        {"uuid": "e1", "type": "Report Run", "contact": "u1", "at": "2024-05-01T10:00:00Z",
         "rows": 5},
        {"uuid": "e2", "type": "Invoice Paid", "org": "a1", "at": "2024-05-02T00:00:00+02:00"},
        {"uuid": "e3", "type": "Broken", "contact": "u1", "at": "yesterday"},
    ]
    first = send(batch)
    assert first.status_code == 201, first.text
    assert first.json()["created"] == 2
    assert first.json()["rejected"][0]["index"] == 2
    assert first.json()["rejected"][0]["reason"].startswith("timestamp: expected ISO 8601")
    retry = send(batch[:2])
    assert retry.status_code == 204
    stored = events(db, workspace)
    assert [(e.event_id, e.event, e.user_id, e.account_id) for e in stored] == [
        ("e1", "Report Run", "u1", "a1"), ("e2", "Invoice Paid", None, "a1")]
    assert stored[0].properties == {"rows": 5}
    assert stored[1].timestamp.replace(tzinfo=timezone.utc) == \
        datetime(2024, 5, 1, 22, tzinfo=timezone.utc)


def test_events_with_a_fixed_name_default_to_the_received_time(connect, db, workspace):
    send = connect("event", mapping={"event_name": "Deal Won", "account_id_field": "org"})
    before = datetime.now(timezone.utc)
    response = send({"org": "a1", "amount": 1200})
    assert response.status_code == 201, response.text
    (event,) = events(db, workspace)
    assert (event.event, event.account_id, event.properties) == ("Deal Won", "a1",
                                                                 {"amount": 1200})
    assert event.timestamp.replace(tzinfo=timezone.utc) >= before.replace(microsecond=0)


def test_delete_request_removes(connect, db, workspace):
    seed_accounts(db, workspace, {"account_id": "a1", "name": "Acme"})
    send = connect(mapping={"id_field": "sfdc_id"})
    response = send([{"sfdc_id": "a1"}], method="DELETE")
    assert response.status_code == 202 and response.json()["removed"] == 1
    assert accounts(db, workspace)["a1"].archived_at is not None


def test_connection_log_entries_count_rows_of_the_request(connect, db, workspace):
    send = connect("user", mapping={"account_name_field": "company"})
    send([{"user_id": "u1", "email": "a@b.io", "company": "Nope"},
          {"user_id": "u2", "email": "bad"}, {"user_id": "u3", "email": "c@d.io"}])
    fresh(db)
    log = db.session.scalars(sa.select(IngestLog)).one()
    assert (log.protocol, log.rows_received, log.rows_accepted, log.rows_rejected) == \
        ("connection", 3, 1, 2)
    assert [r["index"] for r in log.rejected_sample] == [0, 1]


def test_limits_and_malformed_bodies(connect, db, workspace):
    send = connect(mapping={"wrapper": "rows"})
    too_many = send({"rows": [{"account_id": f"a{i}", "name": "x"} for i in range(1001)]})
    assert too_many.status_code == 413 and "1,000" in too_many.json()["error"]
    broken = requests.post(send.url, data=b"{not json", timeout=10,
                           headers={"Authorization": send.connection.auth_token,
                                    "Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"].startswith("body: not valid JSON")
    assert send("just a string").status_code == 422
    assert accounts(db, workspace) == {}
