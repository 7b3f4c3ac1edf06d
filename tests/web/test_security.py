"""Web security of the dashboard: CSRF on every form, and every page escaping synced data.

FORMS holds a request for every POST route of the dashboard blueprint (a new one missing from
it fails the test). Without a CSRF token, or with a forged one, each is a 400 that changes
nothing; with the page's token the same request goes through, so the 400 was the token's.
Then markup arrives through the ingest surfaces in every place a page shows synced data, and
every page must show it as text: escaped, never as a tag.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from correlated.auth import add_member, issue_key
from correlated.models import Account, Field, IngestLog, WebhookConnection

from correlated.scores import evaluate as score_evaluate, service as scores
from correlated.signals import service as signals

from ..pages import signed_in, snapshot, token_of

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
RAW = ("<script>alert(1)", "<img src=x onerror")
ESCAPED = ("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;")


# --- CSRF -------------------------------------------------------------------------------------

PLAN_INPUT = '[{"source": {"field": "plan"}, "transform": {"type": "map", "values": {"x": 1}}}]'


@pytest.fixture
def setup(app, db, tenant, fresh_g):
    """A's admin signed in, with a connection, a second key and a second member to act on."""
    connection = app.test_client().post("/api/v1/connections", headers=tenant.headers,
                                        json={"name": "Mine", "object": "account"}).get_json()
    app.test_client().post(f"/webhooks/{connection['id']}", json=[{"id": "a1"}], headers={
        "Authorization": connection["authorization_header"]["value"]})
    spare, _ = issue_key(db.session, tenant.workspace, "spare")
    add_member(db.session, tenant.workspace, "bob@acme.example", "a long password", "member")
    db.session.commit()
    client, token = signed_in(app, tenant.admin_email, tenant.admin_password)
    signal = signals.create(db.session, tenant.id, {
        "name": "Free plan", "conditions": [{"field": "plan", "op": "eq", "value": "free"}]})
    score = scores.create(db.session, tenant.id, {"name": "Fit", "inputs": [
        {"source": {"field": "plan"}, "transform": {"type": "map", "values": {"x": 1}}}]})
    db.session.commit()
    alerts = alerting(app, db, tenant)
    from correlated.alerts.rules import create_rule

    rule = create_rule(db.session, tenant.id, {"signal_id": signal.id,
                                               "destination_id": alerts["dest"]})
    db.session.commit()
    return client, token, {"conn": connection["id"], "key": spare.id, "signal": signal.id,
                           "rule": rule.id, "score": score.id, **alerts}


def alerting(app, db, tenant) -> dict[str, str]:
    """A destination (to a closed loopback port) and a failed delivery to it."""
    from correlated.alerts.destinations import create_destination
    from correlated.alerts.models import Delivery
    from correlated.alerts.settings import current

    app.config["ALLOW_PRIVATE_DESTINATIONS"] = True
    dest = create_destination(db.session, tenant.id, "Hook", "webhook", "http://127.0.0.1:9/",
                              current())
    delivery = Delivery(workspace_id=tenant.id, destination_id=dest.id, type="test",
                        entity_key="test:x", payload={}, status="failed",
                        retry_until=dest.created_at)
    db.session.add(delivery)
    db.session.commit()
    return {"dest": dest.id, "delivery": delivery.id}


# (endpoint, path, form), in an order where each valid request leaves the next one possible.
FORMS = [
    ("dashboard.login", "/login", {"email": "admin@acme.example", "password": "x"}),
    ("dashboard.create_field", "/fields",
     {"object": "account", "key": "csrf_field", "label": "CSRF", "type": "STRING"}),
    ("dashboard.rename_field", "/fields/account/plan/label", {"label": "Hacked"}),
    ("dashboard.format_field", "/fields/account/arr/format", {"display_format": "percent"}),
    ("dashboard.hide_field", "/fields/account/csrf_field/hidden", {"hidden": "true"}),
    ("dashboard.delete_field", "/fields/account/csrf_field/delete", {}),
    ("dashboard.create_connection", "/connections",
     {"name": "Hacked", "object": "account", "behavior": "upsert"}),
    ("dashboard.connection_settings", "/connections/{conn}/settings",
     {"name": "Hacked", "behavior": "upsert", "enabled": "y"}),
    ("dashboard.connection_mapping", "/connections/{conn}/mapping", {"id_field": "id"}),
    ("dashboard.connection_rotate", "/connections/{conn}/rotate", {}),
    ("dashboard.connection_replay", "/connections/{conn}/replay", {}),
    ("dashboard.connection_delete", "/connections/{conn}/delete", {}),
    ("dashboard.create_key", "/settings/keys", {"name": "Hacked"}),
    ("dashboard.revoke_key", "/settings/keys/{key}/revoke", {}),
    ("dashboard.invite_member", "/settings/members",
     {"email": "eve@acme.example", "password": "a long password", "role": "admin"}),
    ("dashboard.remove_member", "/settings/members/bob@acme.example/remove", {}),
    ("dashboard.new_browser_key", "/settings/browser/key", {}),
    ("dashboard.save_origins", "/settings/browser", {"origins": "https://evil.example"}),
    ("dashboard.create_destination", "/settings/destinations",
     {"name": "Hacked", "kind": "webhook", "target": "http://127.0.0.1:9/x"}),
    ("dashboard.test_destination", "/settings/destinations/{dest}/test", {}),
    ("dashboard.rotate_destination_secret", "/settings/destinations/{dest}/rotate", {}),
    ("dashboard.resend_delivery", "/deliveries/{delivery}/resend", {}),
    ("dashboard.create_signal_alert", "/signals/{signal}/alerts",
     {"destination_id": "nope", "on": "enter", "cooldown_days": "1", "digest_threshold": "10"}),
    ("dashboard.delete_signal_alert", "/signals/{signal}/alerts/{rule}/delete", {}),
    ("dashboard.delete_destination", "/settings/destinations/{dest}/delete", {}),
    ("dashboard.create_signal", "/signals/new",
     {"name": "Hacked", "conditions": '[{"field": "plan", "op": "eq", "value": "x"}]'}),
    ("dashboard.preview_signal", "/signals/preview",
     {"conditions": '[{"field": "plan", "op": "eq", "value": "x"}]'}),
    ("dashboard.delete_signal", "/signals/{signal}/delete", {}),
    ("dashboard.create_score", "/scores/new", {"name": "Hacked", "inputs": PLAN_INPUT}),
    ("dashboard.preview_score", "/scores/preview", {"inputs": PLAN_INPUT}),
    ("dashboard.update_score", "/scores/{score}", {"name": "Hacked", "inputs": PLAN_INPUT}),
    ("dashboard.delete_score", "/scores/{score}/delete", {}),
    ("dashboard.choose_workspace", "/login/workspace", {"workspace_id": "1"}),
    ("dashboard.change_password", "/settings/password",
     {"current": "correct horse battery staple", "password": "a brand new password",
      "confirm": "a brand new password"}),
    ("dashboard.logout", "/logout", {}),
]


def test_every_dashboard_form_is_in_the_table(app):
    posts = {rule.endpoint for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith("dashboard.") and "POST" in rule.methods}
    assert posts == {endpoint for endpoint, _path, _form in FORMS}


def test_every_form_refuses_a_post_without_a_valid_csrf_token(app, db, tenant, setup):
    client, token, ids = setup
    for endpoint, path, form in FORMS:
        path = path.format(**ids)
        for forged in (None, "forged", token[:-4] + "AAAA"):
            before = snapshot(db, tenant.id)
            data = form if forged is None else {**form, "csrf_token": forged}
            response = client.post(path, data=data)
            assert response.status_code == 400, (endpoint, forged, response.status_code)
            assert "CSRF" in response.get_data(as_text=True), endpoint
            assert snapshot(db, tenant.id) == before, (endpoint, forged)
        assert client.get("/").status_code == 200, endpoint  # still signed in
        response = client.post(path, data={**form, "csrf_token": token})
        # 200: the signal builder's preview answers JSON and changes nothing
        assert response.status_code in (200, 201, 302, 303, 401), (endpoint, response.status_code)


# --- escaping ---------------------------------------------------------------------------------

def recent(days: int) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days)).isoformat()


def send_markup(client, tenant) -> dict[str, str]:
    """Markup in every field a page shows, through the REST API and a webhook connection."""
    api = tenant.headers
    assert client.post("/api/v1/fields", headers=api, json={
        "object": "account", "key": "xss_label", "label": SCRIPT + IMG, "type": "STRING"}
    ).status_code == 201
    client.post("/api/v1/accounts", headers=api, json=[
        {"account_id": "acc-1", "name": SCRIPT, "plan": IMG, "industry": SCRIPT,
         "xss_label": IMG, SCRIPT: IMG, IMG: SCRIPT},
        {"account_id": SCRIPT, "name": IMG, "plan": SCRIPT, "region": IMG}])
    client.post("/api/v1/users", headers=api, json=[
        {"user_id": "u-1", "email": "<script>alert(1)</script>@x.io", "account_id": "acc-1",
         "first_name": IMG, "title": SCRIPT, IMG: SCRIPT},
        {"user_id": IMG, "email": "img@x.io", "account_id": SCRIPT, "last_name": SCRIPT},
        {"user_id": "u-bad", "email": IMG}])  # rejected: the reason quotes the value
    client.post("/api/v1/events", headers=api, json=[
        {"event": SCRIPT, "user_id": "u-1", "timestamp": recent(d), "event_id": f"e{d}",
         IMG: SCRIPT, "note": IMG} for d in (0, 1, 40)] + [
        {"event": IMG, "user_id": IMG, "timestamp": recent(2), SCRIPT: IMG}])
    connection = client.post("/api/v1/connections", headers=api,
                             json={"name": SCRIPT + IMG, "object": "account"}).get_json()
    client.post(f"/webhooks/{connection['id']}", json={"rows": [{"id": SCRIPT, "company": IMG}]},
                headers={"Authorization": connection["authorization_header"]["value"]})
    return connection


def pages(db, tenant, connection: dict) -> list[str]:
    """Lists, detail pages, the events page with an event picked, fields, connections, keys,
    members, and every ingest-log entry."""
    logs = db.session.scalars(sa.select(IngestLog.id).where(IngestLog.workspace_id == tenant.id))
    script, img = quote(SCRIPT, safe=""), quote(IMG, safe="")
    return ["/", "/accounts", "/accounts?q=%3Cscript", "/accounts/acc-1", f"/accounts/{script}",
            "/users", "/users/u-1", f"/users/{img}", "/events", f"/events?event={script}",
            f"/events?event={img}&by=xss_label", "/fields?object=account", "/fields?object=user",
            "/fields?object=event", "/connections", f"/connections/{connection['id']}",
            "/settings/keys", "/settings/members", *[f"/connections/log/{log}" for log in logs]]


def test_every_page_shows_markup_as_text(app, db, client, tenant, fresh_g):
    connection = send_markup(client, tenant)
    add_member(db.session, tenant.workspace, "<script>alert(1)</script>@x.io", "a long password")
    issue_key(db.session, tenant.workspace, SCRIPT + IMG)
    score = scores.create(db.session, tenant.id, {"name": SCRIPT + IMG, "inputs": [
        {"label": SCRIPT, "group": IMG, "source": {"field": "plan"},
         "transform": {"type": "map", "values": {IMG: 1}}}], "tiers": [{"name": IMG, "min": 50}]})
    db.session.commit()
    score_evaluate.run(db.session, tenant.id, score.id, datetime.now(timezone.utc))
    browser, _token = signed_in(app, tenant.admin_email, tenant.admin_password)
    for page in pages(db, tenant, connection) + ["/scores", f"/scores/{score.id}"]:
        response = browser.get(page)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, (page, response.status_code)
        assert not [raw for raw in RAW if raw in html], page
        assert any(escaped in html for escaped in ESCAPED), page


def test_flash_messages_and_the_login_page_escape_what_they_echo(app, db, tenant, fresh_g):
    browser, token = signed_in(app, tenant.admin_email, tenant.admin_password)
    created = browser.post("/fields", data={"object": "account", "key": "echo",
                                            "label": SCRIPT + IMG, "type": "STRING",
                                            "csrf_token": token}, follow_redirects=True)
    renamed = browser.post("/fields/account/plan/label", data={"label": IMG + SCRIPT,
                                                               "csrf_token": token},
                           follow_redirects=True)
    key = browser.post("/settings/keys", data={"name": SCRIPT, "csrf_token": token},
                       follow_redirects=True)  # the page that shows the new key
    login = app.test_client().get("/login?next=/" + quote(SCRIPT + IMG, safe=""))
    for response in (created, renamed, key, login):
        html = response.get_data(as_text=True)
        assert not [raw for raw in RAW if raw in html], html
    for response in (created, renamed):
        assert all(escaped in response.get_data(as_text=True) for escaped in ESCAPED)


def test_stored_markup_is_kept_as_sent(db, client, tenant):
    """Escaping happens when a page is drawn; the data itself is stored as it came."""
    connection = send_markup(client, tenant)
    db.session.rollback()
    stored = db.session.get(WebhookConnection, (tenant.id, connection["id"]))
    assert stored.name == SCRIPT + IMG
    assert stored.latest_payload == {"rows": [{"id": SCRIPT, "company": IMG}]}
    account = db.session.get(Account, (tenant.id, "acc-1"))
    assert (account.name, account.traits["plan"], account.traits[SCRIPT]) == (SCRIPT, IMG, IMG)
    assert db.session.get(Field, (tenant.id, "account", "xss_label")).label == SCRIPT + IMG


def test_a_nul_in_a_page_address_or_form_is_refused_not_a_crash(app, db, tenant, fresh_g):
    browser, token = signed_in(app, tenant.admin_email, tenant.admin_password)
    for page in ("/accounts?q=%00", "/events?event=%00", "/connections?protocol=%00"):
        assert browser.get(page).status_code == 400, page  # PostgreSQL once raised: 500
    for page in ("/accounts/a%00", "/connections/%00", "/connections/log/%00"):
        assert browser.get(page).status_code == 404, page
    before = snapshot(db, tenant.id)
    response = browser.post("/settings/keys", data={"name": "k\x00", "csrf_token": token})
    assert response.status_code == 400 and "name: must not contain NUL" in response.get_data(
        as_text=True)
    assert snapshot(db, tenant.id) == before
