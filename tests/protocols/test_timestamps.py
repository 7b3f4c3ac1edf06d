"""Warehouse timestamp renderings and the future limit on every surface, over real HTTP: the REST
API, Hightouch's Custom Destination and Census's Custom API (real JSON-RPC client), the quick
webhook, a webhook connection, the Segment-spec API and its forwarder endpoint, on SQLite and
PostgreSQL."""
from __future__ import annotations

import base64
from datetime import datetime, timezone

import pytest
import requests
import sqlalchemy as sa

from correlated.models import Event, IngestLog
from correlated.protocols.connections import create_connection, update_connection

from ..rpc_client import Client

WHEN = datetime(2024, 1, 15, 10, 32, tzinfo=timezone.utc)
# One rendering per warehouse, plus BigQuery's wrapper: each must land on WHEN.
RENDERINGS = {"snowflake": "2024-01-15 10:32:00.000 +0000",
              "bigquery": "2024-01-15 10:32:00.000000 UTC",
              "postgres": "2024-01-15 10:32:00+00",
              "wrapped": {"value": "2024-01-15T10:32:00.000Z"}}
FAR = "2099-01-01T00:00:00Z"
TOO_FAR = ("timestamp: 2099-01-01T00:00:00+00:00 is more than 24 hours in the future (the limit "
           "is CORRELATED_MAX_FUTURE_HOURS)")


def rows(prefix: str) -> list[dict]:
    """An event per rendering, then one far in the future (event_id `<prefix>-far`)."""
    made = [{"event_id": f"{prefix}-{name}", "event": "Signed In", "user_id": "u1",
             "timestamp": value} for name, value in RENDERINGS.items()]
    return made + [{"event_id": f"{prefix}-far", "event": "Signed In", "user_id": "u1",
                    "timestamp": FAR}]


def stored(db, workspace) -> dict[str, datetime]:
    db.session.rollback()  # a fresh snapshot: the server wrote from its own threads
    found = db.session.scalars(sa.select(Event).where(Event.workspace_id == workspace.id))
    return {e.event_id: e.timestamp.replace(tzinfo=timezone.utc) if e.timestamp.tzinfo is None
            else e.timestamp for e in found}


def expect_stored(db, workspace, prefix: str) -> None:
    assert stored(db, workspace) == {f"{prefix}-{name}": WHEN for name in RENDERINGS}


def logged_reasons(db, workspace) -> list[str]:
    db.session.rollback()
    logs = db.session.scalars(sa.select(IngestLog).where(IngestLog.workspace_id == workspace.id))
    return [r["reason"] for log in logs for r in log.rejected_sample]


def test_rest_api(live_server, db, tenant):
    response = requests.post(f"{live_server}/api/v1/events", json=rows("rest"),
                             headers=tenant.headers, timeout=30)
    assert response.status_code == 200, response.text  # some rows stored, some rejected
    assert response.json()["rejected"] == [{"index": 4, "id": "rest-far", "reason": TOO_FAR}]
    expect_stored(db, tenant.workspace, "rest")


def test_hightouch_custom_destination(live_server, db, tenant):
    ht = Client(f"{live_server}/hightouch/rpc", tenant.key)
    configuration = {"object": "event", "mode": "insert", "mappings": [
        {"from": "event_id", "to": "event_id"}, {"from": "event", "to": "event"},
        {"from": "user_id", "to": "user_id"}, {"from": "timestamp", "to": "timestamp"}]}
    result = ht.call("add", idColumn="event_id", configuration=configuration, rows=rows("ht"))
    assert result == {"rejectedRows": [{"id": "ht-far", "reason": TOO_FAR}]}
    expect_stored(db, tenant.workspace, "ht")


def test_census_custom_api(live_server, db, tenant):
    census = Client(f"{live_server}/census/rpc", tenant.key)
    plan = {"object": {"object_api_name": "event", "label": "Event"}, "operation": "insert",
            "schema": {"event_id": {"active_identifier": True,
                                    "field": {"field_api_name": "event_id"}}}}
    result = census.call("sync_batch", sync_plan=plan, records=rows("census"))
    assert result["record_results"][-1] == {"identifier": "census-far", "success": False,
                                            "error_message": TOO_FAR}
    assert all(r["success"] for r in result["record_results"][:-1])
    expect_stored(db, tenant.workspace, "census")


def test_quick_webhook(live_server, db, tenant):
    response = requests.post(f"{live_server}/hightouch/webhook", json=rows("hook"),
                             headers=tenant.headers, timeout=30)
    assert response.status_code == 201, response.text
    assert response.json()["rejected"] == [{"index": 4, "id": "hook-far", "reason": TOO_FAR}]
    expect_stored(db, tenant.workspace, "hook")


def test_webhook_connection(live_server, db, tenant):
    connection = create_connection(db.session, tenant.id, "events", "event", mapping={
        "event_field": "event", "user_id_field": "user_id", "timestamp_field": "timestamp",
        "event_id_field": "event_id"})
    update_connection(connection, {"enabled": True})
    db.session.commit()
    response = requests.post(f"{live_server}/webhooks/{connection.id}", json=rows("conn"),
                             headers={"Authorization": connection.auth_token}, timeout=30)
    assert response.status_code == 201, response.text
    assert [r["reason"] for r in response.json()["rejected"]] == [TOO_FAR]
    expect_stored(db, tenant.workspace, "conn")


@pytest.mark.parametrize("far_field", ["timestamp", "originalTimestamp"])
def test_segment_spec_api(live_server, db, tenant, far_field):
    headers = {"Authorization": "Basic " + base64.b64encode(f"{tenant.key}:".encode()).decode()}
    batch = [{"type": "track", "userId": "u1", "event": "Signed In", "messageId": f"seg-{name}",
              "timestamp": value} for name, value in RENDERINGS.items() if name != "wrapped"]
    response = requests.post(f"{live_server}/v1/batch", json={"batch": batch}, timeout=30,
                             headers=headers)
    assert response.status_code == 200, response.text
    assert stored(db, tenant.workspace) == {f"seg-{name}": WHEN for name in RENDERINGS
                                            if name != "wrapped"}
    # Segment corrects the clock (receivedAt - (sentAt - timestamp)): still far ahead.
    requests.post(f"{live_server}/v1/track", timeout=30, headers=headers, json={
        "userId": "u1", "event": "Signed In", "messageId": "seg-far", far_field: FAR,
        "sentAt": datetime.now(timezone.utc).isoformat()})
    assert "seg-far" not in stored(db, tenant.workspace)
    (reason,) = logged_reasons(db, tenant.workspace)
    assert reason.startswith("track: timestamp: 2099-01-01T") and \
        reason.endswith("is more than 24 hours in the future (the limit is "
                        "CORRELATED_MAX_FUTURE_HOURS)")


def test_segment_and_rudderstack_forwarders(live_server, db, tenant):
    """/v1/webhook takes forwarded timestamps as already corrected: a far one is refused."""
    headers = {"Authorization": "Basic " + base64.b64encode(f"{tenant.key}:".encode()).decode()}
    forwarded = [{"type": "track", "userId": "u1", "event": "Signed In", "messageId": "fw-ok",
                  "timestamp": "2024-01-15T10:32:00.000Z"},
                 {"type": "track", "userId": "u1", "event": "Signed In", "messageId": "fw-far",
                  "timestamp": FAR}]
    requests.post(f"{live_server}/v1/webhook", json=forwarded, headers=headers, timeout=30)
    assert stored(db, tenant.workspace) == {"fw-ok": WHEN}
    (reason,) = logged_reasons(db, tenant.workspace)
    assert reason.endswith(TOO_FAR)
