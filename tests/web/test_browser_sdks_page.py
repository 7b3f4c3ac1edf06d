"""Settings → Browser SDKs: admins create the browser write key and list the allowed origins;
members see them. On SQLite and PostgreSQL."""
from __future__ import annotations

import json

import pytest

from correlated.auth import add_member
from correlated.models import Event, Workspace

from ..pages import signed_in


@pytest.fixture
def admin(app, tenant, fresh_g):
    return signed_in(app, tenant.admin_email, tenant.admin_password)


def workspace(db, tenant) -> Workspace:
    db.session.rollback()
    return db.session.get(Workspace, tenant.id)


def test_an_admin_creates_the_key_and_lists_origins_then_a_page_there_can_send(
        app, db, tenant, admin):
    client, token = admin
    page = client.get("/settings/browser").get_data(as_text=True)
    assert "No browser write key yet" in page and "Create the browser write key" in page
    assert workspace(db, tenant).allowed_origins == []

    response = client.post("/settings/browser/key", data={"csrf_token": token})
    assert response.status_code == 303
    key = workspace(db, tenant).browser_write_key
    assert key.startswith("pub_")
    page = client.get("/settings/browser").get_data(as_text=True)
    assert key in page and 'apiHost: "localhost/v1", protocol: "http"' in page

    response = client.post("/settings/browser", data={
        "csrf_token": token, "origins": "https://Shop.Example.com/\nhttp://localhost:3000"})
    assert response.status_code == 303
    assert workspace(db, tenant).allowed_origins == ["https://shop.example.com",
                                                     "http://localhost:3000"]
    assert "https://shop.example.com\nhttp://localhost:3000" in client.get(
        "/settings/browser").get_data(as_text=True)

    beacon = app.test_client().post("/v1/t", data=json.dumps(
        {"userId": "u1", "event": "Clicked", "writeKey": key}),
        headers={"Content-Type": "text/plain", "Origin": "https://shop.example.com"})
    assert beacon.status_code == 200
    assert beacon.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    db.session.rollback()
    assert [e.event for e in db.session.query(Event)] == ["Clicked"]

    client.post("/settings/browser/key", data={"csrf_token": token})  # replaced
    assert workspace(db, tenant).browser_write_key not in (None, key)


def test_a_bad_origin_is_named_and_nothing_saved(db, tenant, admin):
    client, token = admin
    response = client.post("/settings/browser", data={
        "csrf_token": token, "origins": "https://ok.example\nshop.example.com/pricing"})
    assert response.status_code == 400
    assert "expected an origin like https://www.example.com" in response.get_data(as_text=True)
    assert workspace(db, tenant).allowed_origins == []


def test_members_see_the_settings_and_cannot_change_them(app, db, tenant, fresh_g):
    add_member(db.session, tenant.workspace, "viewer@acme.example", "viewer password 1")
    tenant.workspace.allowed_origins = ["https://shop.example.com"]
    db.session.commit()
    client, token = signed_in(app, "viewer@acme.example", "viewer password 1")
    page = client.get("/settings/browser").get_data(as_text=True)
    assert "https://shop.example.com" in page and "Only workspace admins" in page
    assert 'id="save-origins"' not in page
    for path, data in [("/settings/browser", {"origins": "*"}), ("/settings/browser/key", {})]:
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 403
    assert workspace(db, tenant).allowed_origins == ["https://shop.example.com"]
    assert workspace(db, tenant).browser_write_key is None
