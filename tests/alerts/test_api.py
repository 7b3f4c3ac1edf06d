"""/api/v1/destinations, /alert-rules and /deliveries over HTTP with a key."""
from __future__ import annotations

from standardwebhooks.webhooks import Webhook

from correlated.alerts import deliver_due

from .helpers import entered, push
from .receivers import Answer


def create(client, tenant, **body):
    return client.post("/api/v1/destinations", headers=tenant.headers, json=body)


def test_destination_lifecycle(client, tenant, allow_private, receiver):
    made = create(client, tenant, name="Ops hook", kind="webhook", url=receiver.url)
    assert made.status_code == 201
    secret = made.json["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40  # shown once, in full
    listed = client.get("/api/v1/destinations", headers=tenant.headers).json["destinations"]
    assert listed[0]["secret"] == secret[:6] + "…" + secret[-4:]  # masked afterwards
    assert listed[0]["url"] == receiver.url and listed[0]["kind"] == "webhook"

    tested = client.post(f"/api/v1/destinations/{made.json['id']}/test", headers=tenant.headers)
    assert tested.status_code == 200 and tested.json["status"] == "delivered"
    assert tested.json["attempt_log"][0]["response_code"] == 200
    Webhook(secret).verify(receiver.received[0].body, receiver.received[0].headers)

    rotated = client.post(f"/api/v1/destinations/{made.json['id']}/rotate-secret",
                          headers=tenant.headers)
    assert rotated.status_code == 200 and rotated.json["secret"] != secret
    assert rotated.json["previous_secret_expires_at"]
    client.post(f"/api/v1/destinations/{made.json['id']}/test", headers=tenant.headers)
    Webhook(rotated.json["secret"]).verify(receiver.received[1].body, receiver.received[1].headers)

    assert client.delete(f"/api/v1/destinations/{made.json['id']}",
                         headers=tenant.headers).status_code == 204
    assert client.get("/api/v1/destinations", headers=tenant.headers).json["destinations"] == []


def test_slack_url_is_masked_and_must_be_slack(app, client, tenant):
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = False
    wrong = create(client, tenant, name="s", kind="slack", url="https://example.com/hook")
    assert wrong.status_code == 422 and "hooks.slack.com" in wrong.json["errors"]["url"]
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = True
    made = create(client, tenant, name="s", kind="slack", url="http://127.0.0.1:9/services/x/y/z")
    assert made.status_code == 201 and made.json["secret"] is None
    assert "…" in made.json["url"] and "services/x/y/z" not in made.json["url"]


def test_bad_input_names_the_field(client, tenant, allow_private, receiver):
    assert create(client, tenant, name="x", kind="pager", url=receiver.url).json["errors"] == {
        "kind": "must be one of slack, webhook, email"}
    assert "name" in create(client, tenant, kind="webhook", url=receiver.url).json["errors"]
    email = create(client, tenant, name="x", kind="email", address="cs@acme.example")
    assert "CORRELATED_SMTP_URL" in email.json["errors"]["address"]
    assert create(client, tenant, name="x", kind="email", address="nope").json["errors"] == {
        "address": "not an email address"}
    rule = client.post("/api/v1/alert-rules", headers=tenant.headers,
                       json={"signal_id": "s", "on": "sometimes", "destination_id": "nope",
                             "cooldown_days": -1, "color": "red"})
    assert rule.status_code == 422 and set(rule.json["errors"]) == {
        "on", "destination_id", "cooldown_days", "color"}
    assert client.post("/api/v1/destinations", headers=tenant.headers,
                       json=[1]).status_code == 400


def test_rules_and_deliveries(client, db, tenant, allow_private, receiver):
    hook = create(client, tenant, name="h", kind="webhook", url=receiver.url).json
    made = client.post("/api/v1/alert-rules", headers=tenant.headers, json={
        "signal_id": "sig_expansion", "on": "both", "destination_id": hook["id"],
        "cooldown_days": 0, "owner_dimension": "owner_email"})
    assert made.status_code == 201 and made.json["digest_threshold"] == 10
    assert [r["id"] for r in client.get("/api/v1/alert-rules?signal_id=sig_expansion",
                                        headers=tenant.headers).json["alert_rules"]] == [
        made.json["id"]]
    receiver.script = [Answer(404, body=b"no such hook")]
    push(db, tenant, entered("acme"))
    deliver_due(db.session)
    failed = client.get("/api/v1/deliveries?status=failed", headers=tenant.headers).json
    [delivery] = failed["deliveries"]
    assert delivery["attempt_log"][0]["response_code"] == 404
    assert delivery["attempt_log"][0]["response_snippet"] == "no such hook"
    again = client.post(f"/api/v1/deliveries/{delivery['id']}/resend", headers=tenant.headers)
    assert again.status_code == 202 and again.json["status"] == "pending"
    assert client.post(f"/api/v1/deliveries/{delivery['id']}/resend",
                       headers=tenant.headers).status_code == 409
    deliver_due(db.session)
    [done] = client.get("/api/v1/deliveries", headers=tenant.headers).json["deliveries"]
    assert done["status"] == "delivered" and len(done["attempt_log"]) == 2
    assert client.get("/api/v1/deliveries?limit=0", headers=tenant.headers).status_code == 400
    assert client.delete(f"/api/v1/alert-rules/{made.json['id']}",
                         headers=tenant.headers).status_code == 204


def test_another_workspace_sees_none_of_it(client, tenant, other_tenant, allow_private, receiver):
    hook = create(client, tenant, name="h", kind="webhook", url=receiver.url).json
    for method, path in [("post", f"/api/v1/destinations/{hook['id']}/test"),
                         ("post", f"/api/v1/destinations/{hook['id']}/rotate-secret"),
                         ("delete", f"/api/v1/destinations/{hook['id']}")]:
        assert getattr(client, method)(path, headers=other_tenant.headers).status_code == 404
    assert client.get("/api/v1/destinations",
                      headers=other_tenant.headers).json["destinations"] == []
    rule = client.post("/api/v1/alert-rules", headers=other_tenant.headers,
                       json={"signal_id": "s", "destination_id": hook["id"]})
    assert rule.json["errors"] == {"destination_id": "no such destination in this workspace"}
    assert receiver.received == []
    assert client.get("/api/v1/destinations").status_code == 401


def test_unstorable_text_is_a_clear_error_not_a_500(client, tenant, allow_private, receiver):
    for body, field in [({"name": "a\x00b", "kind": "webhook", "url": receiver.url}, "name"),
                        ({"name": "x", "kind": "webhook", "url": "http://a\x00b/"}, "url"),
                        ({"name": "\ud800", "kind": "webhook", "url": receiver.url}, "name")]:
        response = client.post("/api/v1/destinations", headers=tenant.headers, json=body)
        assert response.status_code == 422 and field in response.json["errors"], response.json
    rule = client.post("/api/v1/alert-rules", headers=tenant.headers,
                       json={"signal_id": "s\x00", "destination_id": "d\x00"})
    assert set(rule.json["errors"]) == {"signal_id", "destination_id"}
    for method, path in [("post", "/api/v1/destinations/a%00b/test"),
                         ("delete", "/api/v1/alert-rules/a%00b"),
                         ("post", "/api/v1/deliveries/a%00b/resend")]:
        assert getattr(client, method)(path, headers=tenant.headers).status_code == 404
    assert client.get("/api/v1/deliveries?destination_id=a%00b",
                      headers=tenant.headers).status_code == 400
