"""Census Custom API over real HTTP: planning methods, sync_batch per object with bad records
mixed in (checked against the database), and the key in the URL, which logs never show
(gunicorn's access log: tests/test_observability.py)."""
import logging

import pytest
import requests
import sqlalchemy as sa
from jsonrpcclient import request

from correlated.models import Account, Event, Field, IngestLog, User

from ..rpc_client import Client, RpcFailed, drop_refusal, fresh, refuse_account, run_ddl


@pytest.fixture
def census(live_server, tenant):
    return Client(live_server + "/census/rpc", tenant.key)


def plan(obj, operation, identifier):
    """A sync plan as Census sends it (schema trimmed to the active identifier)."""
    field = {"field_api_name": identifier, "label": identifier, "identifier": True,
             "required": True, "createable": True, "updateable": False, "type": "string",
             "array": False}
    return {"object": {"object_api_name": obj, "label": obj.title()}, "operation": operation,
            "schema": {identifier: {"active_identifier": True, "field": field}}}


def test_connection_accepts_the_key_in_the_header_or_the_url(live_server, tenant):
    url = live_server + "/census/rpc"
    assert Client(url, tenant.key).call("test_connection") == {"success": True}
    in_url = Client(f"{url}?census_authentication={tenant.key}", None)
    assert in_url.call("test_connection") == {"success": True}
    wrong = requests.post(f"{url}?census_authentication=cor_wrong", json=request("test_connection"),
                          timeout=10)
    assert wrong.status_code == 401


def test_objects_fields_operations_and_speed(census, db, tenant):
    assert census.call("list_objects") == {"objects": [
        {"object_api_name": "account", "label": "Account", "can_create_fields": "on_write"},
        {"object_api_name": "user", "label": "User", "can_create_fields": "on_write"},
        {"object_api_name": "event", "label": "Event", "can_create_fields": "on_write"}]}
    db.session.add_all([
        Field(workspace_id=tenant.id, object="account", key="tags", label="Tags", type="ARRAY"),
        Field(workspace_id=tenant.id, object="account", key="address", label="Address",
              type="OBJECT")])
    db.session.commit()
    fields = {f["field_api_name"]: f for f in
              census.call("list_fields", object={"object_api_name": "account", "label": "Account"})
              ["fields"]}
    assert fields["account_id"] == {"field_api_name": "account_id", "label": "Account ID",
                                    "identifier": True, "required": True, "createable": True,
                                    "updateable": False, "type": "string", "array": False}
    assert fields["name"]["required"] and not fields["name"]["identifier"]
    assert {k: fields[k]["type"] for k in ("arr", "renewal_date", "created_at", "plan")} == {
        "arr": "float", "renewal_date": "date", "created_at": "date_time", "plan": "string"}
    assert fields["tags"]["array"] is True and "address" not in fields
    allowed = {"boolean", "decimal", "float", "integer", "date", "date_time", "string"}
    for obj in ("account", "user", "event"):
        listed = census.call("list_fields", object={"object_api_name": obj})["fields"]
        assert all(f["type"] in allowed for f in listed)
        assert any(f["identifier"] for f in listed)  # Census needs one per object
    user = {f["field_api_name"]: f for f in
            census.call("list_fields", object={"object_api_name": "user"})["fields"]}
    assert {k for k, f in user.items() if f["identifier"]} == {"user_id", "email"}
    assert [f for f in census.call("list_fields", object={"object_api_name": "event"})["fields"]
            if f["identifier"]][0]["field_api_name"] == "event_id"
    ops = {obj: census.call("supported_operations", object={"object_api_name": obj})["operations"]
           for obj in ("account", "user", "event")}
    assert ops == {"account": ["upsert", "update", "mirror"],
                   "user": ["upsert", "update", "mirror"], "event": ["insert", "mirror"]}
    speed = census.call("get_sync_speed", sync_plan=plan("account", "upsert", "account_id"))
    assert speed == {"maximum_batch_size": 500, "maximum_parallel_batches": 4,
                     "maximum_records_per_second": speed["maximum_records_per_second"]}
    assert speed["maximum_records_per_second"] > 0
    tenant.workspace.allow_custom_fields = False
    db.session.commit()
    assert all("can_create_fields" not in o for o in census.call("list_objects")["objects"])


def test_account_batches_report_every_record(census, db, tenant):
    records = [{"account_id": "a1", "name": "Acme", "plan": "pro", "arr": "1200.50",
                "nps_score": 42},
               {"account_id": "a2", "name": "Globex", "renewal_date": "2026-13-45"},
               {"account_id": "a3"},
               {"account_id": 4, "name": "Initech", "arr": 99}]
    result = census.call("sync_batch", sync_plan=plan("account", "upsert", "account_id"),
                         records=records)
    assert result == {"record_results": [
        {"identifier": "a1", "success": True},
        {"identifier": "a2", "success": False,
         "error_message": "renewal_date: not a valid date: '2026-13-45' (field type DATE)"},
        {"identifier": "a3", "success": False, "error_message": "name: required"},
        {"identifier": 4, "success": True}]}
    a1 = fresh(db, Account, tenant, "a1")
    assert (a1.name, a1.traits) == ("Acme", {"plan": "pro", "arr": 1200.5, "nps_score": 42})
    assert fresh(db, Account, tenant, "4").traits == {"arr": 99}
    assert db.session.get(Field, (tenant.id, "account", "nps_score")).type == "NUMBER"  # on write
    assert fresh(db, Account, tenant, "a2") is None

    update = census.call("sync_batch", sync_plan=plan("account", "update", "account_id"),
                         records=[{"account_id": "a1", "plan": "enterprise"},
                                  {"account_id": "ghost", "plan": "free"}])
    assert update["record_results"] == [
        {"identifier": "a1", "success": True},
        {"identifier": "ghost", "success": False,
         "error_message": "no account with account_id ghost"}]
    a1 = fresh(db, Account, tenant, "a1")
    assert (a1.name, a1.traits["plan"]) == ("Acme", "enterprise")
    assert fresh(db, Account, tenant, "ghost") is None
    with pytest.raises(RpcFailed) as failed:
        census.call("sync_batch", sync_plan=plan("account", "merge", "account_id"),
                    records=[{"account_id": "a1"}])
    assert failed.value.error.code == -32602
    assert "upsert, update, mirror, delete; got 'merge'" in failed.value.error.message
    db.session.rollback()
    log = db.session.scalars(sa.select(IngestLog).order_by(IngestLog.received_at)).all()
    assert [(e.protocol, e.operation, e.rows_received, e.rows_rejected) for e in log] == [
        ("census", "upsert", 4, 2), ("census", "update", 2, 1), ("census", None, 1, 1)]
    assert log[0].payload == records
    assert "merge" in log[2].error and log[2].object == "account"


def test_user_batches_matched_on_email(census, db, tenant):
    records = [{"email": "ada@acme.io", "user_id": "u1", "account_id": "a1", "first_name": "Ada"},
               {"email": "bob@acme.io"},
               {"email": "broken", "user_id": "u3"}]
    result = census.call("sync_batch", sync_plan=plan("user", "upsert", "email"), records=records)
    assert result["record_results"] == [
        {"identifier": "ada@acme.io", "success": True},
        {"identifier": "bob@acme.io", "success": False, "error_message": "user_id: required"},
        {"identifier": "broken", "success": False,
         "error_message": "email: not a valid email address: 'broken'"}]
    u1 = fresh(db, User, tenant, "u1")
    assert (u1.email, u1.account_id, u1.traits) == ("ada@acme.io", "a1", {"first_name": "Ada"})
    census.call("sync_batch", sync_plan=plan("user", "update", "user_id"),
                records=[{"user_id": "u1", "first_name": None, "title": "CTO"}])
    assert fresh(db, User, tenant, "u1").traits == {"title": "CTO"}  # null clears


def test_event_batches_are_idempotent(census, db, tenant):
    records = [{"event_id": "e1", "event": "Signed In", "timestamp": "2026-05-01T10:00:00Z",
                "user_id": "u1", "duration": 3.5},
               {"event_id": "e2", "event": "Signed In", "user_id": "u1"},
               {"event_id": "e3", "event": "Report Created", "timestamp": "2026-05-01T11:00:00Z",
                "user_id": "u2", "account_id": "a9"}]
    result = census.call("sync_batch", sync_plan=plan("event", "insert", "event_id"),
                         records=records)
    assert [(r["identifier"], r["success"]) for r in result["record_results"]] == [
        ("e1", True), ("e2", False), ("e3", True)]
    assert result["record_results"][1]["error_message"] == "timestamp: required"
    again = census.call("sync_batch", sync_plan=plan("event", "insert", "event_id"),
                        records=records[:1])
    assert again["record_results"] == [{"identifier": "e1", "success": True}]
    db.session.rollback()
    stored = db.session.scalars(sa.select(Event).order_by(Event.event_id)).all()
    assert [(e.event_id, e.event, e.account_id) for e in stored] == [
        ("e1", "Signed In", None), ("e3", "Report Created", "a9")]
    assert stored[0].properties == {"duration": 3.5}


def test_a_database_error_fails_the_batch_for_census_to_retry(census, db, tenant):
    run_ddl(db, refuse_account(db, "Doomed"))
    try:
        with pytest.raises(RpcFailed) as failed:
            census.call("sync_batch", sync_plan=plan("account", "upsert", "account_id"),
                        records=[{"account_id": "a1", "name": "Fine"},
                                 {"account_id": "a2", "name": "Doomed"}])
        assert failed.value.error.code == -32603 and "refused" in failed.value.error.data
        assert fresh(db, Account, tenant, "a1") is None
        assert "refused" in db.session.scalars(sa.select(IngestLog)).one().error
    finally:
        run_ddl(db, drop_refusal(db))


def test_the_url_key_never_reaches_the_request_log(live_server, tenant, caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    client = Client(f"{live_server}/census/rpc?census_authentication={tenant.key}", None)
    assert client.call("test_connection") == {"success": True}
    requests.post(f"{live_server}/census/rpc?census_authentication={tenant.key[:-2]}xx",
                  json=request("test_connection"), timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("census_authentication=[redacted]" in line for line in lines)
    assert not any(tenant.key[:-2] in line for line in lines)



# --- the Auth Token, mirror and delete, with the bodies of Census's Custom API documentation ----

def documented_plan(obj, operation, identifier, other):
    """`sync_plan` shaped as the documentation's sync_batch request (sync_run_id, sync_id, a
    schema entry per mapped field, the active identifier among them)."""
    def entry(name, active):
        return {"active_identifier": active, "field": {
            "field_api_name": name, "label": name.title(), "identifier": active,
            "required": active, "createable": True, "updateable": not active,
            "type": "string", "array": False}}
    schema = {identifier: entry(identifier, True), **{name: entry(name, False) for name in other}}
    return {"object": {"object_api_name": obj, "label": obj.title()}, "operation": operation,
            "sync_run_id": 602, "sync_id": 309, "schema": schema}


def sync_batch(url, key, sync_plan, records, request_id="5da3749ace39c7d47791dcf3b10f9842"):
    """POST the documented envelope with the Auth Token header Census sends."""
    body = {"jsonrpc": "2.0", "method": "sync_batch", "id": request_id,
            "params": {"sync_plan": sync_plan, "records": records}}
    response = requests.post(url, json=body, timeout=30, headers={
        "Authorization": f"Bearer {key}", "User-Agent": "Census https://www.getcensus.com"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == request_id, answer
    return answer["result"]["record_results"]


def test_the_auth_token_is_sent_as_a_bearer_header(live_server, tenant):
    """The documentation's test_connection request, byte for byte, with the Auth Token."""
    body = (b'{"jsonrpc":"2.0","method":"test_connection","params":{},'
            b'"id":"d33ded2672b7877ff833c317892d748c"}')
    response = requests.post(f"{live_server}/census/rpc", data=body, timeout=10, headers={
        "Content-Type": "application/json", "User-Agent": "Census https://www.getcensus.com",
        "Authorization": f"Bearer {tenant.key}"})
    assert response.json() == {"jsonrpc": "2.0", "id": "d33ded2672b7877ff833c317892d748c",
                               "result": {"success": True}}
    wrong = requests.post(f"{live_server}/census/rpc", data=body, timeout=10, headers={
        "Content-Type": "application/json", "Authorization": "Bearer cor_wrong"})
    assert wrong.status_code == 401


def test_a_mirror_sync_upserts_then_archives_what_left_the_model(live_server, census, db,
                                                                  tenant):
    url = f"{live_server}/census/rpc"
    assert "mirror" in census.call("supported_operations", object={
        "object_api_name": "account", "label": "Account"})["operations"]
    upsert = documented_plan("account", "upsert", "account_id", ["name", "plan"])
    records = [{"account_id": "a1", "name": "Acme", "plan": "pro"},
               {"account_id": "a2", "name": "Globex", "plan": "free"},
               {"account_id": "a3", "name": "Initech"}]
    assert all(r["success"] for r in sync_batch(url, tenant.key, upsert, records))
    delete = documented_plan("account", "delete", "account_id", ["name", "plan"])
    results = sync_batch(url, tenant.key, delete, [
        {"account_id": "a1", "name": "Acme", "plan": "no longer a plan"},  # only the ID is read
        {"account_id": "never-seen"}, {"name": "no id"}])
    assert results == [{"identifier": "a1", "success": True},
                       {"identifier": "never-seen", "success": True},
                       {"identifier": None, "success": False,
                        "error_message": "account_id: required"}]
    a1 = fresh(db, Account, tenant, "a1")
    assert a1.archived_at is not None and a1.traits == {"plan": "pro"}  # archived, kept
    assert fresh(db, Account, tenant, "a2").archived_at is None
    # The row comes back into the model: the next upsert batch restores it.
    assert sync_batch(url, tenant.key, upsert, records[:1])[0]["success"]
    assert fresh(db, Account, tenant, "a1").archived_at is None
    # remove_action=delete in the connection URL deletes for good.
    assert sync_batch(f"{url}?remove_action=delete", tenant.key, delete,
                      [{"account_id": "a2"}]) == [{"identifier": "a2", "success": True}]
    assert fresh(db, Account, tenant, "a2") is None
    log = db.session.scalars(sa.select(IngestLog).order_by(IngestLog.received_at)).all()
    assert [(e.operation, e.rows_received, e.rows_rejected) for e in log] == [
        ("upsert", 3, 0), ("remove", 3, 1), ("upsert", 1, 0), ("remove", 1, 0)]
    assert log[1].payload[0]["plan"] == "no longer a plan"  # what Census sent, as sent
    with pytest.raises(RpcFailed) as failed:
        Client(f"{url}?remove_action=shred", tenant.key).call(
            "sync_batch", sync_plan=delete, records=[{"account_id": "a3"}])
    assert "remove_action (in the URL): expected archive or delete" in failed.value.error.message
    assert fresh(db, Account, tenant, "a3").archived_at is None


def test_user_and_event_mirrors_remove_by_their_ids(live_server, db, tenant):
    url = f"{live_server}/census/rpc"
    users = documented_plan("user", "upsert", "user_id", ["email"])
    assert all(r["success"] for r in sync_batch(url, tenant.key, users, [
        {"user_id": "u1", "email": "ada@acme.io"}, {"user_id": "u2", "email": "bob@acme.io"}]))
    gone = sync_batch(url, tenant.key, documented_plan("user", "delete", "user_id", ["email"]),
                      [{"user_id": "u1", "email": "not even an email"}])
    assert gone == [{"identifier": "u1", "success": True}]
    assert fresh(db, User, tenant, "u1").archived_at is not None
    assert fresh(db, User, tenant, "u2").archived_at is None

    # A mirror sync of events: its upsert batches insert (events are immutable, a resend is
    # stored once), its delete batches delete by event_id.
    assert "mirror" in Client(url, tenant.key).call(
        "supported_operations", object={"object_api_name": "event"})["operations"]
    events = documented_plan("event", "upsert", "event_id", ["event", "timestamp", "user_id"])
    rows = [{"event_id": "e1", "event": "Signed In", "timestamp": "2026-05-01T10:00:00Z",
             "user_id": "u2"},
            {"event_id": "e2", "event": "Signed In", "timestamp": "2026-05-02T10:00:00Z",
             "user_id": "u2"}]
    assert all(r["success"] for r in sync_batch(url, tenant.key, events, rows + rows[:1]))
    db.session.rollback()
    assert sorted(db.session.scalars(sa.select(Event.event_id))) == ["e1", "e2"]
    delete = documented_plan("event", "delete", "event_id", ["event", "timestamp", "user_id"])
    assert sync_batch(url, tenant.key, delete, [{"event_id": "e1"}]) == [
        {"identifier": "e1", "success": True}]
    db.session.rollback()
    assert list(db.session.scalars(sa.select(Event.event_id))) == ["e2"]
