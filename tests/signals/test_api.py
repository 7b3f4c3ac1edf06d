"""The signals REST API through the test client, on both databases."""
from __future__ import annotations

import csv
import io

import pytest

from correlated.ingest.engine import ingest
from correlated.models import utcnow
from correlated.signals import evaluate

from .test_evaluate import load

FREE = {"name": "free", "category": "conversion",
        "conditions": [{"field": "plan", "op": "eq", "value": "free"}]}


def post(client, tenant, path, body):
    return client.post(f"/api/v1/signals{path}", json=body, headers=tenant.headers)


def test_create_read_change_delete(client, db, tenant):
    load(db.session, tenant.workspace)
    made = post(client, tenant, "", FREE)
    assert made.status_code == 201
    signal = made.get_json()
    assert signal["evaluated_at"] is None and signal["members"] == 0
    evaluate.run(db.session, tenant.id, signal["id"], utcnow())
    got = client.get(f"/api/v1/signals/{signal['id']}", headers=tenant.headers).get_json()
    assert got["members"] == 4 and got["entered_7d"] == 0  # the back-fill is not "entered"
    listed = client.get("/api/v1/signals", headers=tenant.headers).get_json()["data"]
    assert [s["id"] for s in listed] == [signal["id"]]
    changed = client.patch(f"/api/v1/signals/{signal['id']}", json={"name": "Free plan"},
                           headers=tenant.headers)
    assert changed.status_code == 200 and changed.get_json()["name"] == "Free plan"
    assert changed.get_json()["evaluated_at"] is not None  # a rename is no new definition
    account = client.get("/api/v1/accounts/a0", headers=tenant.headers).get_json()
    assert [s["name"] for s in account["signals"]] == ["Free plan"]
    assert account["signals"][0]["already_in"] is True
    assert account["signals"][0]["values"] == {"plan": "free"}
    user = client.get("/api/v1/users/u0", headers=tenant.headers).get_json()
    assert user["signals"] == []
    assert client.delete(f"/api/v1/signals/{signal['id']}", headers=tenant.headers).status_code == 204
    assert client.get(f"/api/v1/signals/{signal['id']}", headers=tenant.headers).status_code == 404


@pytest.mark.parametrize("condition, index, message", [
    ({"field": "plann", "op": "eq", "value": "free"}, 1, "unknown account field 'plann'"),
    ({"field": "plan", "op": "gt", "value": 3}, 1, "op 'gt' does not fit STRING field 'plan'"),
    ({"field": "employees", "op": "eq", "value": "many"}, 1, "value must be a number"),
    ({"metric": "events", "window_days": 400, "op": "gte", "value": 1}, 1,
     "window_days must be a whole number from 1 to 365"),
    ({"metric": "active_users", "window_days": 7, "op": "like", "value": 1}, 1,
     "op 'like' does not fit a metric"),
    ({"metric": "sum", "event": "x", "property": "nope", "window_days": 7, "op": "gte",
      "value": 1}, 1, "unknown event property 'nope'"),
    ({"field": "plan", "changed_to": "pro", "within_days": 0}, 1, "within_days must be"),
    ({"signal": "missing", "op": "in"}, 1, "no signal with id 'missing'"),
])
def test_a_bad_definition_is_a_422_naming_the_condition(client, tenant, condition, index, message):
    body = {"name": "x", "conditions": [{"field": "plan", "op": "eq", "value": "free"}, condition]}
    response = post(client, tenant, "", body)
    assert response.status_code == 422
    problem = response.get_json()["problems"][0]
    assert problem["condition"] == index and message in problem["message"]
    assert f"conditions[{index}]" in response.get_json()["error"]
    assert post(client, tenant, "/preview", body).status_code == 422


def test_a_cycle_is_refused(client, tenant):
    first = post(client, tenant, "", FREE).get_json()
    second = post(client, tenant, "", {"name": "b", "conditions": [
        {"signal": first["id"], "op": "in"}]}).get_json()
    response = client.patch(f"/api/v1/signals/{first['id']}", headers=tenant.headers, json={
        "conditions": [{"signal": second["id"], "op": "not_in"}]})
    assert response.status_code == 422
    assert "cycle" in response.get_json()["problems"][0]["message"]
    assert client.delete(f"/api/v1/signals/{first['id']}", headers=tenant.headers).status_code == 409


def test_preview_members_and_history(client, db, tenant):
    load(db.session, tenant.workspace)
    body = {"name": "active", "conditions": [{"metric": "events", "window_days": 30,
                                              "op": "gte", "value": 1}]}
    preview = post(client, tenant, "/preview", body).get_json()
    assert preview["count"] == 12 and len(preview["sample"]) == 12
    assert set(preview["sample"][0]["values"]) == {"events 30d"}
    assert client.get("/api/v1/signals", headers=tenant.headers).get_json()["data"] == []
    signal = post(client, tenant, "", body).get_json()
    evaluate.run(db.session, tenant.id, signal["id"], utcnow())
    page = client.get(f"/api/v1/signals/{signal['id']}/members?limit=5",
                      headers=tenant.headers).get_json()
    rest = client.get(f"/api/v1/signals/{signal['id']}/members?limit=100&cursor="
                      f"{page['next_cursor']}", headers=tenant.headers).get_json()
    ids = [m["id"] for m in page["data"] + rest["data"]]
    assert len(ids) == 12 == len(set(ids)) and rest["next_cursor"] is None
    assert page["data"][0]["name"].startswith("Acme")
    text = client.get(f"/api/v1/signals/{signal['id']}/members?format=csv",
                      headers=tenant.headers).get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["id"] for r in rows) == sorted(ids) and rows[0]["already_in"] == "true"
    since = utcnow().isoformat()
    ingest(db.session, tenant.workspace, "account", "upsert", [{"account_id": "new", "name": "N"}])
    ingest(db.session, tenant.workspace, "event", "insert", [
        {"event_id": "x1", "event": "sign_in", "user_id": "nu", "account_id": "new",
         "timestamp": utcnow().isoformat()}])
    evaluate.run(db.session, tenant.id, signal["id"], utcnow(), force=True)
    history = client.get(f"/api/v1/signals/{signal['id']}/history", query_string={"since": since},
                         headers=tenant.headers).get_json()["data"]
    assert [(t["entity_id"], t["kind"], t["backfill"]) for t in history] == [
        ("new", "entered", False)]
    assert history[0]["values"] == {"events 30d": 1}


def test_another_workspace_sees_nothing(client, tenant, other_tenant):
    signal = post(client, tenant, "", FREE).get_json()
    for path in ("", "/members", "/history"):
        assert client.get(f"/api/v1/signals/{signal['id']}{path}",
                          headers=other_tenant.headers).status_code == 404
    assert client.get("/api/v1/signals", headers=other_tenant.headers).get_json()["data"] == []
    assert client.get("/api/v1/signals").status_code == 401
