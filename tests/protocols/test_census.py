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
    assert ops == {"account": ["upsert", "update"], "user": ["upsert", "update"],
                   "event": ["insert"]}
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
        census.call("sync_batch", sync_plan=plan("account", "mirror", "account_id"),
                    records=[{"account_id": "a1"}])
    assert failed.value.error.code == -32602 and "upsert, update" in failed.value.error.message
    db.session.rollback()
    log = db.session.scalars(sa.select(IngestLog).order_by(IngestLog.received_at)).all()
    assert [(e.protocol, e.operation, e.rows_received, e.rows_rejected) for e in log] == [
        ("census", "upsert", 4, 2), ("census", "update", 2, 1), ("census", None, 1, 1)]
    assert log[0].payload == records
    assert "mirror" in log[2].error and log[2].object == "account"


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

