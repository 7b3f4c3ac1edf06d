"""The /connections dashboard page (Flask test client): setup URLs, connections, ingest log."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from correlated.auth import add_member
from correlated.protocols.connections import create_connection
from correlated.models import WebhookConnection

MEMBER_PASSWORD = "member password 123"


def token_of(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def sign_in(client, email: str, password: str) -> None:
    token = token_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)


@pytest.fixture
def admin(client, tenant):
    sign_in(client, tenant.admin_email, tenant.admin_password)
    return client


@pytest.fixture
def member(client, db, tenant):
    add_member(db.session, tenant.workspace, "viewer@acme.example", MEMBER_PASSWORD)
    db.session.commit()
    sign_in(client, "viewer@acme.example", MEMBER_PASSWORD)
    return client


@pytest.fixture
def hook(db, tenant):
    connection = create_connection(db.session, tenant.id, "Warehouse accounts", "account")
    db.session.commit()
    return connection


def page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def post(client, path: str, data: dict, form_page: str) -> object:
    """Submit a form the way a browser does: with the CSRF token of the page that shows it."""
    return client.post(path, data={**data, "csrf_token": token_of(page(client, form_page))})


def send_rows(client, path: str, rows, headers: dict):
    """A machine request through the signed-in member's client (the session is not its key)."""
    return client.post(path, json=rows, headers=headers)


def stored(db, tenant, connection_id):
    db.session.expire_all()
    return db.session.get(WebhookConnection, (tenant.id, connection_id))


def test_signed_out_visitors_go_to_the_login_page(client, hook):
    for path in ("/connections", f"/connections/{hook.id}"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def text_of(html: str) -> str:
    """The page's text: URLs carry a <wbr> after each slash (they wrap only there)."""
    return re.sub(r"<[^>]+>", "", html)


def test_setup_steps_show_this_servers_urls(admin, app):
    html = page(admin, "/connections")
    for url in ("http://localhost/hightouch/rpc", "http://localhost/hightouch/webhook",
                "http://localhost/census/rpc?census_authentication=&lt;your API key&gt;"):
        assert url in text_of(html)
    assert 'data-copy="#url-hightouch-webhook"' in html
    assert "<script>" not in html.split("</main>")[0]  # no inline script (CSP script-src 'self')
    app.config["PUBLIC_URL"] = "https://analytics.example.com"
    assert "https://analytics.example.com/hightouch/rpc" in text_of(page(admin, "/connections"))


def test_admin_creates_a_connection_with_csrf(admin, db, tenant):
    response = post(admin, "/connections", {"name": "Contacts from Snowflake",
                                            "object": "user", "behavior": "update"},
                    "/connections")
    assert response.status_code == 302
    (made,) = db.session.scalars(sa.select(WebhookConnection)).all()
    assert (made.name, made.object, made.behavior, made.enabled, made.enforce_auth) == \
        ("Contacts from Snowflake", "user", "update", False, True)
    assert response.headers["Location"].endswith(f"/connections/{made.id}")
    forged = admin.post("/connections", data={"name": "x", "object": "user",
                                              "behavior": "upsert"})
    assert forged.status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookConnection)) == 1


def test_detail_shows_url_header_and_the_latest_payload_then_maps_it(admin, db, tenant, hook):
    html = page(admin, f"/connections/{hook.id}")
    assert f"http://localhost/webhooks/{hook.id}" in text_of(html)
    assert hook.auth_token in html
    assert "Nothing received yet" in html and 'id="payload-keys"' not in html
    refused = post(admin, f"/connections/{hook.id}/mapping", {"id_field": "sfdc_id"},
                   f"/connections/{hook.id}")
    assert refused.status_code == 302 and stored(db, tenant, hook.id).mapping == {}

    body = {"data": {"rows": [{"sfdc_id": "a1", "company": "<b>Acme</b>", "plan": "pro"}]}}
    sent = send_rows(admin, f"/webhooks/{hook.id}", body, {"Authorization": hook.auth_token})
    assert sent.status_code == 202
    html = page(admin, f"/connections/{hook.id}")
    assert '&#34;company&#34;: &#34;&lt;b&gt;Acme&lt;/b&gt;&#34;' in html  # pretty and escaped
    assert '<option value="data.rows">' in html  # the wrapper path is offered

    saved = post(admin, f"/connections/{hook.id}/mapping",
                 {"wrapper": "data.rows", "id_field": "sfdc_id", "name_field": "company",
                  "enable": "y"}, f"/connections/{hook.id}")
    assert saved.status_code == 302
    connection = stored(db, tenant, hook.id)
    assert connection.mapping == {"wrapper": "data.rows", "id_field": "sfdc_id",
                                  "name_field": "company"}
    assert connection.enabled is True
    html = page(admin, f"/connections/{hook.id}")
    assert "Mapping saved; the connection is enabled." in html
    assert '<option value="sfdc_id">' in html  # keys now read under the wrapper


def test_invalid_mapping_is_explained(admin, db, tenant, hook):
    send_rows(admin, f"/webhooks/{hook.id}", [{"domain": "acme.io"}],
              {"Authorization": hook.auth_token})
    response = post(admin, f"/connections/{hook.id}/mapping",
                    {"match_property": "domain", "match_field": "domain"},
                    f"/connections/{hook.id}")
    assert response.status_code == 302
    html = page(admin, f"/connections/{hook.id}")
    assert "Behavior: matching on a custom property works with behavior" in html
    assert stored(db, tenant, hook.id).mapping == {}


def test_settings_toggle_enabled_and_enforcement(admin, db, tenant, hook):
    response = post(admin, f"/connections/{hook.id}/settings",
                    {"name": "Renamed", "behavior": "upsert", "enabled": "y"},
                    f"/connections/{hook.id}")
    assert response.status_code == 302
    connection = stored(db, tenant, hook.id)
    assert (connection.name, connection.enabled, connection.enforce_auth) == \
        ("Renamed", True, False)


def test_rotate_and_delete(admin, db, tenant, hook):
    old = hook.auth_token
    post(admin, f"/connections/{hook.id}/rotate", {}, f"/connections/{hook.id}")
    assert stored(db, tenant, hook.id).auth_token != old
    response = post(admin, f"/connections/{hook.id}/delete", {}, f"/connections/{hook.id}")
    assert response.status_code == 302 and stored(db, tenant, hook.id) is None


def test_members_view_but_only_admins_change(member, db, tenant, hook):
    html = page(member, "/connections")
    assert "Warehouse accounts" in html and 'id="new-connection"' not in html
    detail = page(member, f"/connections/{hook.id}")
    # Issue #13, 11: the header value is a write credential, for admins only.
    assert hook.auth_token not in detail and "Save settings" not in detail
    token = token_of(detail)
    for path in ("/connections", f"/connections/{hook.id}/settings",
                 f"/connections/{hook.id}/rotate", f"/connections/{hook.id}/delete"):
        response = member.post(path, data={"name": "x", "object": "account",
                                           "behavior": "upsert", "csrf_token": token})
        assert response.status_code == 403, path
    assert stored(db, tenant, hook.id).name == "Warehouse accounts"


def test_another_workspace_connection_and_log_are_404(admin, db, other_tenant, client):
    theirs = create_connection(db.session, other_tenant.id, "Globex", "event")
    db.session.commit()
    send_rows(client, "/hightouch/webhook", [{"foo": 1}], other_tenant.headers)
    entry_id = db.session.execute(sa.text("SELECT id FROM ingest_log")).scalar_one()
    token = token_of(page(admin, "/connections"))
    assert admin.get(f"/connections/{theirs.id}").status_code == 404
    for action in ("settings", "mapping", "rotate", "delete"):
        response = admin.post(f"/connections/{theirs.id}/{action}", data={"csrf_token": token})
        assert response.status_code == 404, action
    assert admin.get(f"/connections/log/{entry_id}").status_code == 404
    assert "Globex" not in page(admin, "/connections")


def test_ingest_log_lists_requests_with_rejected_rows(admin, tenant):
    send_rows(admin, "/hightouch/webhook", [
        {"account_id": "a1", "name": "Acme"},
        {"user_id": "u1", "email": "<script>alert(1)</script>"},
    ], tenant.headers)
    html = page(admin, "/connections")
    assert "webhook" in html and "and 0 more" not in html
    assert "email: not a valid email address: &#39;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    entry = re.search(r'href="/connections/log/([0-9a-f]+)"', html).group(1)
    detail = page(admin, f"/connections/log/{entry}")
    assert "Rejected rows" in detail and "u1" in detail and "partly stored" in detail
    assert "No requests on this protocol yet" in page(admin, "/connections?protocol=census")
