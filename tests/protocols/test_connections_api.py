"""/api/v1/connections: key auth, workspace scope, validation."""
from __future__ import annotations

import pytest

from correlated.models import WebhookConnection

BASE = "/api/v1/connections"


def create(client, tenant, **body):
    body = {"name": "Salesforce accounts", "object": "accounts", **body}
    return client.post(BASE, json=body, headers=tenant.headers)


def test_create_list_show_update_delete(client, tenant, db):
    response = create(client, tenant)
    assert response.status_code == 201, response.json
    made = response.json
    assert (made["object"], made["behavior"], made["enabled"], made["enforce_auth"]) == \
        ("account", "upsert", False, True)
    assert made["url"] == f"http://localhost/webhooks/{made['id']}"
    assert len(made["id"]) >= 32
    assert made["authorization_header"]["name"] == "Authorization"
    assert made["authorization_header"]["value"].startswith("whk_")
    assert made["latest_payload"] is None and made["payload_keys"] == []

    listed = client.get(BASE, headers=tenant.headers).json["connections"]
    assert [c["id"] for c in listed] == [made["id"]]

    changed = client.patch(f"{BASE}/{made['id']}", headers=tenant.headers, json={
        "enabled": True, "enforce_auth": False, "behavior": "update",
        "mapping": {"wrapper": "data", "id_field": "sfdc_id", "name_field": ""}})
    assert changed.status_code == 200, changed.json
    assert changed.json["mapping"] == {"wrapper": "data", "id_field": "sfdc_id"}
    stored = db.session.get(WebhookConnection, (tenant.id, made["id"]))
    db.session.refresh(stored)
    assert (stored.enabled, stored.enforce_auth, stored.behavior) == (True, False, "update")

    old = made["authorization_header"]["value"]
    rotated = client.post(f"{BASE}/{made['id']}/rotate-token", headers=tenant.headers).json
    assert rotated["authorization_header"]["value"] not in (old, None)

    assert client.delete(f"{BASE}/{made['id']}", headers=tenant.headers).status_code == 204
    assert client.get(f"{BASE}/{made['id']}", headers=tenant.headers).status_code == 404


def test_public_url_setting_names_the_webhook_url(app, client, tenant):
    app.config["PUBLIC_URL"] = "https://correlated.example.com/"
    made = create(client, tenant).json
    assert made["url"] == f"https://correlated.example.com/webhooks/{made['id']}"


def test_latest_payload_and_its_keys_are_shown(client, tenant):
    made = create(client, tenant, enabled=False).json
    client.post(f"/webhooks/{made['id']}", json={"data": [{"id": 1, "org": {"name": "A"}}]},
                headers={"Authorization": made["authorization_header"]["value"]})
    shown = client.get(f"{BASE}/{made['id']}", headers=tenant.headers).json
    assert shown["latest_payload"] == {"data": [{"id": 1, "org": {"name": "A"}}]}
    assert shown["suggested_wrapper"] == "data"
    assert shown["payload_keys"] == ["id", "org", "org.name"]


@pytest.mark.parametrize("body, errors", [
    ({"name": "", "object": "accounts"}, {"name": "required"}),
    ({"name": "x", "object": "products"}, {"object": "expected account, user or event"}),
    ({"name": "x", "object": "account", "behavior": "insert"},
     {"behavior": "expected one of upsert, update"}),
    ({"name": "x", "object": "account", "enabled": "yes"}, {"enabled": "expected true or false"}),
    ({"name": "x", "object": "event", "mapping": {"name_field": "n"}},
     {"mapping.name_field": "not a setting of the event mapping (expected wrapper, event_field, "
                            "event_name, user_id_field, account_id_field, timestamp_field, "
                            "event_id_field)"}),
    ({"name": "x", "object": "account", "behavior": "update",
      "mapping": {"match_property": "domain"}},
     {"mapping.match_field": "match_property and match_field go together"}),
    ({"name": "x", "object": "account", "colour": "red"},
     {"colour": "not a setting of a connection"}),
])
def test_invalid_settings_are_422_naming_each_problem(client, tenant, body, errors):
    response = client.post(BASE, json=body, headers=tenant.headers)
    assert response.status_code == 422
    assert response.json == {"error": "invalid connection settings", "errors": errors}


def test_object_cannot_change(client, tenant):
    made = create(client, tenant).json
    response = client.patch(f"{BASE}/{made['id']}", json={"object": "user"},
                            headers=tenant.headers)
    assert response.status_code == 422
    assert response.json["errors"] == {"object": "not a setting of a connection "
                                                 "(object cannot change)"}


def test_keys_are_required(client):
    assert client.get(BASE).status_code == 401
    assert client.post(BASE, json={"name": "x", "object": "account"}).status_code == 401


def test_another_workspace_connection_is_404(client, tenant, other_tenant):
    made = create(client, tenant).json
    theirs = other_tenant.headers
    assert client.get(BASE, headers=theirs).json == {"connections": []}
    for method in ("get", "patch", "delete"):
        response = getattr(client, method)(f"{BASE}/{made['id']}", headers=theirs, json={})
        assert response.status_code == 404, method
    assert client.get(f"{BASE}/{made['id']}", headers=tenant.headers).status_code == 200
