"""Tenant isolation, route by route: workspace A's credentials on workspace B's objects.

PROBES is a table with at least one request for every route of the app (a route missing from it
fails `test_every_route_is_in_the_table`). Each probe runs with A's API key or A's signed-in
admin against B's account, user, event, field, connection, ingest-log entry, API key or member:
the answer is the expected status (404 for B's objects, or A's own empty view), B's names, IDs
and values never appear in it, and nothing of B changes. Where A gets a 404, B's own credentials
on the same request must reach the object, so a 404 is isolation, not a broken probe.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from correlated.auth import add_member, revoke_keys
from correlated.protocols.connections import create_connection, keep_payload
from correlated.ingest.engine import ingest
from correlated.models import ApiKey, Field, IngestLog, WebhookConnection
from correlated.scores import evaluate as score_evaluate, service as scores
from correlated.signals import service as signals

from .pages import signed_in, snapshot, token_of

B_ROWS = {
    "account": [{"account_id": "b-acct", "name": "Globex Secret Co", "plan": "globex-plan-secret",
                 "globex_secret_field": "globex-field-value"},
                {"account_id": "b-hidden", "name": "Globex Hidden Inc"}],
    "user": [{"user_id": "b-user", "email": "spy@globex.example", "account_id": "b-acct",
              "title": "globex-title-secret"},
             {"user_id": "b-hidden-user", "email": "hidden@globex.example"}],
    "event": [{"event_id": "b-event", "event": "Globex Secret Event", "user_id": "b-user",
               "globex_prop": "globex-prop-value"}],
}


@dataclass
class World:
    """Workspace A (the caller) and B (the target), with B's object IDs and telltale strings."""

    a: Any
    b: Any
    ids: dict[str, str]
    markers: set[str] = field(default_factory=set)


@pytest.fixture
def world(db, tenant, other_tenant, fresh_g) -> World:
    b = other_tenant
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    for obj, rows in B_ROWS.items():
        rows = [{**r, "timestamp": yesterday} if obj == "event" else r for r in rows]
        assert not ingest(db.session, b.workspace, obj, "upsert" if obj != "event" else "insert",
                          rows).rejected
    label = db.session.get(Field, (b.id, "account", "globex_secret_field"))
    label.label = "Globex Secret Label"
    connection = create_connection(db.session, b.id, "Globex Secret Connection", "account",
                                   mapping={"id_field": "id"})
    keep_payload(connection, {"note": "globex-payload-value"})
    add_member(db.session, b.workspace, "bob@globex.example", "globex password 1", role="member")
    alerting = b_alerting(db, b.id)
    secret_signal = signals.create(db.session, b.id, {
        "name": "Globex Secret Signal", "conditions": [
            {"field": "plan", "op": "eq", "value": "globex-plan-secret"}]})
    secret_score = scores.create(db.session, b.id, {
        "name": "Globex Secret Score", "inputs": [{"source": {"field": "plan"}, "transform": {
            "type": "map", "values": {"globex-plan-secret": 1}}}],
        "tiers": [{"name": "globex-tier-secret", "min": 50}]})
    db.session.commit()
    score_evaluate.run(db.session, b.id, secret_score.id, datetime.now(timezone.utc))
    key = db.session.scalars(sa.select(ApiKey).where(ApiKey.workspace_id == b.id)).one()
    log = db.session.scalars(sa.select(IngestLog).where(IngestLog.workspace_id == b.id)).first()
    ids = {"conn": connection.id, "key": key.id, "log": log.id, "signal": secret_signal.id,
           "score": secret_score.id}
    markers = {"Globex Secret Co", "globex-plan-secret", "b-acct", "b-hidden", "Globex Hidden Inc",
               "spy@globex.example", "hidden@globex.example", "b-user", "globex-title-secret",
               "b-event", "Globex Secret Event", "globex-prop-value", "globex_secret_field",
               "Globex Secret Label", "globex-field-value", "Globex Secret Connection",
               "globex-payload-value", connection.auth_token, connection.id, key.id, key.prefix,
               log.id, "bob@globex.example", b.admin_email, b.key, *alerting,
               "Globex Secret Signal", secret_signal.id, "Globex Secret Score",
               "globex-tier-secret", secret_score.id}
    return World(tenant, b, ids, markers)


def b_alerting(db, workspace_id: int) -> set[str]:
    """B's destination (fixed ids, for probe bodies), an alert rule and a failed delivery."""
    from correlated.alerts.destinations import new_secret
    from correlated.alerts.models import AlertRule, Delivery, Destination

    secret = new_secret()
    db.session.add(Destination(workspace_id=workspace_id, id="b-dest", kind="webhook",
                               name="Globex Secret Destination", secret=secret,
                               target="http://127.0.0.1:9/globex-hook-secret"))
    db.session.flush()
    db.session.add_all([
        AlertRule(workspace_id=workspace_id, id="b-rule", signal_id="globex-signal-secret",
                  destination_id="b-dest"),
        Delivery(workspace_id=workspace_id, id="msg_b-delivery", destination_id="b-dest",
                 type="signal.entered", entity_key="account:b-acct", status="failed",
                 payload={"data": {"note": "globex-delivery-secret"}},
                 retry_until=datetime.now(timezone.utc))])
    return {"Globex Secret Destination", "globex-hook-secret", secret, secret[-12:], "b-dest",
            "b-rule", "globex-signal-secret", "msg_b-delivery", "globex-delivery-secret"}


# --- the table --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    """One request: the route it covers, how it authenticates, what A may get back."""

    endpoint: str
    method: str
    path: str
    kind: str  # key: A's API key | member: A's signed-in admin | public | connection
    expect: tuple[int, ...]
    json: Any = None
    form: dict[str, str] | None = None
    control: bool = False  # B's own credentials reach the object (expected: not 401/404)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def key(endpoint, method, path, expect, json=None, control=False) -> Probe:
    return Probe(endpoint, method, path, "key", expect, json=json, control=control)


def member(endpoint, method, path, expect, form=None, control=False) -> Probe:
    return Probe(endpoint, method, path, "member", expect, form=form, control=control)


def rpc(method: str, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


UPDATE_B = {"object": "account", "mode": "update",
            "identifierMapping": [{"from": "id", "to": "account_id"}],
            "mappings": [{"from": "name", "to": "name"}]}
CENSUS_UPDATE = {"object": "account", "operation": "update"}
NOT_FOUND = (404,)

PROBES = [
    # REST API: B's IDs are unknown in A's workspace; writes land in A's own namespace.
    key("api.write", "POST", "/api/v1/accounts?mode=update", (422,),
        [{"account_id": "b-acct", "name": "Hijacked"}]),
    key("api.write", "POST", "/api/v1/events?mode=remove", (200,), [{"event_id": "b-event"}]),
    key("api.list_records", "GET", "/api/v1/accounts?include_archived=true", (200,)),
    key("api.list_records", "GET", "/api/v1/users?account_id=b-acct", (200,)),
    key("api.list_records", "GET", "/api/v1/events?format=csv", (200,)),
    key("api.get_record", "GET", "/api/v1/accounts/b-acct", NOT_FOUND, control=True),
    key("api.get_record", "GET", "/api/v1/users/b-user", NOT_FOUND, control=True),
    key("api.get_record", "GET", "/api/v1/events/b-event", NOT_FOUND, control=True),
    key("api.delete_record", "DELETE", "/api/v1/accounts/b-acct", NOT_FOUND, control=True),
    key("api.delete_record", "DELETE", "/api/v1/events/b-event", NOT_FOUND, control=True),
    key("api.list_fields", "GET", "/api/v1/fields", (200,)),
    key("api.create_field", "POST", "/api/v1/fields",
        (201,), {"object": "account", "key": "mine_from_api", "type": "STRING"}),
    key("api.change_field", "PATCH", "/api/v1/fields/account/globex_secret_field", NOT_FOUND,
        {"hidden": True}, control=True),
    key("api.delete_field", "DELETE", "/api/v1/fields/account/globex_secret_field", NOT_FOUND,
        control=True),
    Probe("api.openapi", "GET", "/api/v1/openapi.json", "public", (200,)),
    key("signals_api.list_signals", "GET", "/api/v1/signals", (200,)),
    key("signals_api.create_signal", "POST", "/api/v1/signals", (422,),
        {"name": "Mine", "conditions": [{"signal": "{signal}", "op": "in"}]}),
    key("signals_api.preview", "POST", "/api/v1/signals/preview", (200,),
        {"conditions": [{"field": "plan", "op": "eq", "value": "globex-plan-secret"}]}),
    key("signals_api.get_signal", "GET", "/api/v1/signals/{signal}", NOT_FOUND, control=True),
    key("signals_api.update_signal", "PATCH", "/api/v1/signals/{signal}", NOT_FOUND,
        {"name": "Hijacked"}, control=True),
    key("signals_api.delete_signal", "DELETE", "/api/v1/signals/{signal}", NOT_FOUND,
        control=True),
    key("signals_api.members", "GET", "/api/v1/signals/{signal}/members", NOT_FOUND,
        control=True),
    key("signals_api.history", "GET", "/api/v1/signals/{signal}/history", NOT_FOUND,
        control=True),
    key("scores_api.list_scores", "GET", "/api/v1/scores", (200,)),
    key("scores_api.create_score", "POST", "/api/v1/scores", (422,),
        {"name": "Mine", "inputs": [{"source": {"signal": "{signal}"}, "transform": "bool"}]}),
    key("scores_api.preview", "POST", "/api/v1/scores/preview", (200,),
        {"inputs": [{"source": {"field": "plan"}, "transform": {
            "type": "map", "values": {"globex-plan-secret": 1}}}]}),
    key("scores_api.get_score", "GET", "/api/v1/scores/{score}", NOT_FOUND, control=True),
    key("scores_api.update_score", "PATCH", "/api/v1/scores/{score}", NOT_FOUND,
        {"name": "Hijacked"}, control=True),
    key("scores_api.delete_score", "DELETE", "/api/v1/scores/{score}", NOT_FOUND, control=True),
    key("scores_api.values", "GET", "/api/v1/scores/{score}/values", NOT_FOUND, control=True),
    # Before the writes below: the score previews list A's accounts, and those writes add
    # A's own "b-acct".
    member("dashboard.scores", "GET", "/scores", (200,)),
    member("dashboard.new_score", "GET", "/scores/new", (200,)),
    member("dashboard.create_score", "POST", "/scores/new", (422,),
           {"name": "Mine", "inputs": '[{"source": {"signal": "{signal}"}, "transform": "bool"}]'}),
    member("dashboard.preview_score", "POST", "/scores/preview", (200,),
           {"inputs": '[{"source": {"field": "plan"}, "transform": '
                      '{"type": "map", "values": {"globex-plan-secret": 1}}}]'}),
    member("dashboard.score", "GET", "/scores/{score}", NOT_FOUND, control=True),
    member("dashboard.update_score", "POST", "/scores/{score}", NOT_FOUND,
           {"name": "Hijacked", "inputs": "[]"}, control=True),
    member("dashboard.delete_score", "POST", "/scores/{score}/delete", NOT_FOUND, control=True),
    member("dashboard.accounts", "GET", "/accounts?sort=score:{score}&field=tier:{score}&op=ne"
           "&value=x", (200,)),
    key("connections_api.list_all", "GET", "/api/v1/connections", (200,)),
    key("connections_api.create", "POST", "/api/v1/connections", (201,),
        {"name": "Mine", "object": "account"}),
    key("connections_api.show", "GET", "/api/v1/connections/{conn}", NOT_FOUND, control=True),
    key("connections_api.update", "PATCH", "/api/v1/connections/{conn}", NOT_FOUND,
        {"name": "Hijacked"}, control=True),
    key("connections_api.update", "PUT", "/api/v1/connections/{conn}", NOT_FOUND,
        {"enabled": True}, control=True),
    key("connections_api.rotate", "POST", "/api/v1/connections/{conn}/rotate-token", NOT_FOUND,
        control=True),
    key("connections_api.delete", "DELETE", "/api/v1/connections/{conn}", NOT_FOUND,
        control=True),
    key("connections_api.replay_held", "POST", "/api/v1/connections/{conn}/replay", NOT_FOUND,
        control=True),
    # Sync tools and SDKs: A's catalog, A's records; B's stay as they are.
    key("hightouch.endpoint", "POST", "/hightouch/rpc", (200,),
        rpc("list_fields", object="account")),
    key("hightouch.endpoint", "POST", "/hightouch/rpc", (200,),
        rpc("change", idColumn="id", configuration=UPDATE_B,
            rows=[{"id": "b-acct", "name": "Hijacked"}])),
    key("census.endpoint", "POST", "/census/rpc", (200,), rpc("list_fields", object="account")),
    key("census.endpoint", "POST", "/census/rpc", (200,),
        rpc("sync_batch", sync_plan=CENSUS_UPDATE,
            records=[{"account_id": "b-acct", "name": "Hijacked"}])),
    key("webhooks.hightouch_webhook", "DELETE", "/hightouch/webhook?object=account", (204,),
        [{"account_id": "b-acct"}]),
    key("webhooks.hightouch_webhook", "POST", "/hightouch/webhook?object=account", (201,),
        [{"account_id": "b-acct", "name": "Hijacked"}]),
    key("webhooks.hightouch_webhook", "PUT", "/hightouch/webhook?object=account", (201, 204),
        [{"account_id": "b-acct", "name": "Hijacked"}]),
    key("webhooks.hightouch_webhook", "PATCH", "/hightouch/webhook?object=account", (201, 204),
        [{"account_id": "b-acct", "name": "Hijacked", "plan": "hijacked"}]),
    Probe("webhooks.connection_webhook", "POST", "/webhooks/{conn}", "connection", (401,),
          json=[{"id": "b-acct", "name": "Hijacked"}], control=True),
    Probe("webhooks.connection_webhook", "DELETE", "/webhooks/{conn}", "connection", (401,),
          json=[{"id": "b-acct"}], control=True),
    Probe("webhooks.connection_webhook", "PUT", "/webhooks/{conn}", "connection", (401,),
          json=[{"id": "b-acct", "name": "Hijacked"}], control=True),
    Probe("webhooks.connection_webhook", "PATCH", "/webhooks/{conn}", "connection", (401,),
          json=[{"id": "b-acct", "name": "Hijacked"}], control=True),
    key("segment.receive", "POST", "/v1/group", (200,),
        {"groupId": "b-acct", "traits": {"name": "Hijacked"}}),
    key("segment.receive", "POST", "/v1/batch", (200,), {"batch": [
        {"type": "identify", "userId": "b-user", "traits": {"title": "Hijacked"}},
        {"type": "track", "userId": "b-user", "event": "Globex Secret Event"}]}),
    *[key("segment.forward", method, "/v1/webhook", (200,), [
        {"type": "group", "groupId": "b-acct", "traits": {"name": "Hijacked"}},
        {"type": "identify", "userId": "b-user", "traits": {"title": "Hijacked"}}])
      for method in ("POST", "PUT", "PATCH")],
    # The browser paths take a workspace's public browser key, never an API key.
    key("segment.receive_browser", "POST", "/v1/t", (401,),
        {"userId": "b-user", "event": "Globex Secret Event"}),
    Probe("health.healthz", "GET", "/healthz", "public", (200,)),
    Probe("metrics.metrics", "GET", "/metrics", "public", (200,)),
    Probe("static", "GET", "/static/css/app.css", "public", (200,)),
    # The dashboard, signed in as A's admin.
    Probe("dashboard.login", "GET", "/login", "public", (200,)),
    Probe("dashboard.login", "POST", "/login", "public", (401,),
          form={"email": "admin@globex.example", "password": "a guess"}),
    # Choosing a workspace needs a password checked in this browser first: back to sign-in.
    Probe("dashboard.choose_workspace", "GET", "/login/workspace", "public", (302,)),
    Probe("dashboard.choose_workspace", "POST", "/login/workspace", "public", (302,),
          form={"workspace_id": "2"}),
    member("dashboard.logout", "POST", "/logout", (302,)),
    member("dashboard.change_password", "GET", "/settings/password", (200,)),
    member("dashboard.change_password", "POST", "/settings/password", (400,),
           {"current": "a guess", "password": "another long password",
            "confirm": "another long password"}),
    member("dashboard.index", "GET", "/", (200,)),
    member("dashboard.accounts", "GET", "/accounts?q=Globex", (200,)),
    member("dashboard.accounts", "GET", "/accounts?format=csv", (200,)),
    member("dashboard.account", "GET", "/accounts/b-acct", NOT_FOUND, control=True),
    member("dashboard.users", "GET", "/users?format=csv", (200,)),
    member("dashboard.user", "GET", "/users/b-user", NOT_FOUND, control=True),
    member("dashboard.events", "GET", "/events?event=Globex+Secret+Event", (200,)),
    member("dashboard.fields", "GET", "/fields?object=account", (200,)),
    member("dashboard.create_field", "POST", "/fields", (302,),
           {"object": "account", "key": "mine_from_form", "label": "Mine", "type": "STRING"}),
    member("dashboard.rename_field", "POST", "/fields/account/globex_secret_field/label",
           NOT_FOUND, {"label": "Hijacked"}, control=True),
    member("dashboard.format_field", "POST", "/fields/account/globex_secret_field/format",
           NOT_FOUND, {"display_format": "percent"}, control=True),
    member("dashboard.hide_field", "POST", "/fields/account/globex_secret_field/hidden",
           NOT_FOUND, {"hidden": "true"}, control=True),
    member("dashboard.delete_field", "POST", "/fields/account/globex_secret_field/delete",
           NOT_FOUND, {}, control=True),
    member("dashboard.signals", "GET", "/signals", (200,)),
    member("dashboard.new_signal", "GET", "/signals/new", (200,)),
    member("dashboard.create_signal", "POST", "/signals/new", (422,),
           {"name": "Mine", "conditions": '[{"signal": "{signal}", "op": "in"}]'}),
    member("dashboard.preview_signal", "POST", "/signals/preview", (200,),
           {"conditions": '[{"field": "plan", "op": "eq", "value": "globex-plan-secret"}]'}),
    member("dashboard.signal", "GET", "/signals/{signal}", NOT_FOUND, control=True),
    member("dashboard.signal_live", "GET", "/signals/{signal}/live", NOT_FOUND, control=True),
    member("dashboard.delete_signal", "POST", "/signals/{signal}/delete", NOT_FOUND,
           control=True),
    member("dashboard.connections", "GET", "/connections", (200,)),
    member("dashboard.create_connection", "POST", "/connections", (302,),
           {"name": "Mine", "object": "account", "behavior": "upsert"}),
    member("dashboard.connection", "GET", "/connections/{conn}", NOT_FOUND, control=True),
    member("dashboard.connection_settings", "POST", "/connections/{conn}/settings", NOT_FOUND,
           {"name": "Hijacked", "behavior": "upsert", "enabled": "y"}, control=True),
    member("dashboard.connection_mapping", "POST", "/connections/{conn}/mapping", NOT_FOUND,
           {"wrapper": "", "id_field": "hijack"}, control=True),
    member("dashboard.connection_rotate", "POST", "/connections/{conn}/rotate", NOT_FOUND,
           control=True),
    member("dashboard.connection_delete", "POST", "/connections/{conn}/delete", NOT_FOUND,
           control=True),
    member("dashboard.connection_replay", "POST", "/connections/{conn}/replay", NOT_FOUND,
           control=True),
    member("dashboard.ingest_log_entry", "GET", "/connections/log/{log}", NOT_FOUND,
           control=True),
    member("dashboard.keys", "GET", "/settings/keys", (200,)),
    member("dashboard.create_key", "POST", "/settings/keys", (303,), {"name": "mine"}),
    member("dashboard.new_key", "GET", "/settings/keys/new", (302,)),
    member("dashboard.revoke_key", "POST", "/settings/keys/{key}/revoke", NOT_FOUND,
           control=True),
    member("dashboard.browser_sdks", "GET", "/settings/browser", (200,)),
    member("dashboard.save_origins", "POST", "/settings/browser", (303,),
           {"origins": "https://mine.example"}),
    member("dashboard.new_browser_key", "POST", "/settings/browser/key", (303,)),
    member("dashboard.members", "GET", "/settings/members", (200,)),
    member("dashboard.invite_member", "POST", "/settings/members", (302,),
           {"email": "new@acme.example", "password": "a long password", "role": "member"}),
    member("dashboard.remove_member", "POST", "/settings/members/bob@globex.example/remove",
           NOT_FOUND, control=True),
    # Alerts: B's destination "b-dest", rule "b-rule" and failed delivery "msg_b-delivery".
    key("alerts_api.list_destinations", "GET", "/api/v1/destinations", (200,)),
    key("alerts_api.create_destination", "POST", "/api/v1/destinations", (422,),
        {"name": "Mine", "kind": "webhook", "url": "http://127.0.0.1:9/"}),
    key("alerts_api.test_destination", "POST", "/api/v1/destinations/b-dest/test", NOT_FOUND,
        control=True),
    key("alerts_api.rotate_secret", "POST", "/api/v1/destinations/b-dest/rotate-secret",
        NOT_FOUND, control=True),
    key("alerts_api.delete_destination", "DELETE", "/api/v1/destinations/b-dest", NOT_FOUND,
        control=True),
    key("alerts_api.list_rules", "GET", "/api/v1/alert-rules?signal_id=globex-signal-secret",
        (200,)),
    key("alerts_api.create_rule", "POST", "/api/v1/alert-rules", (422,),
        {"signal_id": "globex-signal-secret", "destination_id": "b-dest"}, control=True),
    key("alerts_api.delete_rule", "DELETE", "/api/v1/alert-rules/b-rule", NOT_FOUND,
        control=True),
    key("alerts_api.list_deliveries", "GET", "/api/v1/deliveries?status=failed", (200,)),
    key("alerts_api.resend", "POST", "/api/v1/deliveries/msg_b-delivery/resend", NOT_FOUND,
        control=True),
    member("dashboard.destinations_page", "GET", "/settings/destinations", (200,)),
    member("dashboard.create_destination", "POST", "/settings/destinations", (400,),
           {"name": "Mine", "kind": "webhook", "target": "http://127.0.0.1:9/"}),
    member("dashboard.test_destination", "POST", "/settings/destinations/b-dest/test",
           NOT_FOUND, control=True),
    member("dashboard.rotate_destination_secret", "POST", "/settings/destinations/b-dest/rotate",
           NOT_FOUND, control=True),
    member("dashboard.delete_destination", "POST", "/settings/destinations/b-dest/delete",
           NOT_FOUND, control=True),
    member("dashboard.deliveries", "GET", "/deliveries?status=failed", (200,)),
    member("dashboard.resend_delivery", "POST", "/deliveries/msg_b-delivery/resend", NOT_FOUND,
           control=True),
    member("dashboard.create_signal_alert", "POST", "/signals/{signal}/alerts", NOT_FOUND,
           {"destination_id": "b-dest", "on": "enter", "cooldown_days": "1",
            "digest_threshold": "10"}, control=True),
    member("dashboard.delete_signal_alert", "POST",
           "/signals/globex-signal-secret/alerts/b-rule/delete", NOT_FOUND, control=True),
    # The export: B's signals and metrics never join A's records.
    key("api.list_records", "GET",
        "/api/v1/accounts?include=signals,metrics&updated_since=2000-01-01", (200,)),
    key("api.list_records", "GET", "/api/v1/users?include=signals&format=csv", (200,)),
]


def routes(app) -> set[tuple[str, str]]:
    return {(rule.endpoint, method) for rule in app.url_map.iter_rules()
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_every_route_is_in_the_table(app):
    covered = {(p.endpoint, p.method) for p in PROBES}
    assert routes(app) - covered == set(), "add a probe for each new route to PROBES"
    assert covered - routes(app) == set(), "a probe names a route that no longer exists"


# --- sending ----------------------------------------------------------------------------------

class Sender:
    """Sends probes as A (or as B, for the control), signing each admin in once: sign-ins are
    rate-limited per address, and a real admin keeps one session too."""

    def __init__(self, app, db, world: World):
        self.app, self.db, self.world = app, db, world
        self.sessions: dict[bool, tuple] = {}

    def __call__(self, probe: Probe, as_b: bool = False):
        world = self.world
        path = probe.path.format(**world.ids)
        if probe.kind == "member":
            client, token = self.session(as_b)
            return client.open(path, method=probe.method,
                               data={**(probe.form or {}), "csrf_token": token})
        client = self.app.test_client()
        if probe.kind == "public" and probe.form is not None:
            token = token_of(client.get("/login").get_data(as_text=True))
            return client.open(path, method=probe.method, data={**probe.form, "csrf_token": token})
        if probe.kind == "public":
            return client.open(path, method=probe.method)
        return client.open(path, method=probe.method, json=probe.json,
                           headers={"Authorization": self.credential(probe, as_b)})

    def session(self, as_b: bool) -> tuple:
        if as_b not in self.sessions:
            who = self.world.b if as_b else self.world.a
            self.sessions[as_b] = signed_in(self.app, who.admin_email, who.admin_password)
        return self.sessions[as_b]

    def credential(self, probe: Probe, as_b: bool) -> str:
        if probe.kind == "connection" and as_b:  # the connection's own header value
            return self.db.session.get(WebhookConnection,
                                       (self.world.b.id, self.world.ids["conn"])).auth_token
        return f"Bearer {(self.world.b if as_b else self.world.a).key}"


def leaked(body: str, probe: Probe, world: World) -> set[str]:
    """B's telltale strings in a response body, except those the request itself carried."""
    sent = probe.path.format(**world.ids) + json.dumps(probe.json) + json.dumps(probe.form)
    return {m for m in world.markers if m in body and m not in sent}


def problems(send: Sender, probe: Probe) -> list[str]:
    """What went wrong with one probe (nothing, when B stayed out of reach)."""
    db, world = send.db, send.world
    before = snapshot(db, world.b.id)
    response = send(probe)
    body = response.get_data(as_text=True)
    response.close()
    found = []
    if response.status_code not in probe.expect:
        found.append(f"status {response.status_code}: {body[:300]}")
    if leaked(body, probe, world):
        found.append(f"B's data in the answer: {sorted(leaked(body, probe, world))}")
    if snapshot(db, world.b.id) != before:
        found.append("B's data changed")
    if probe.control:  # the same request with B's credentials does reach B's object
        control = send(probe, as_b=True)
        control.close()
        if control.status_code in (401, 403, 404):
            found.append(f"B's own request got {control.status_code}: the probe misses B")
    return [f"{probe.id}: {problem}" for problem in found]


# --- the tests --------------------------------------------------------------------------------

def changes_b(probe: Probe) -> bool:
    """B's own control request of this probe changes B (so it needs a world of its own)."""
    return probe.control and probe.method != "GET"


# Reads first: A's own writes (a webhook creating A's "b-acct") must not answer A's reads.
SHARED = sorted((p for p in PROBES if not changes_b(p)),
                key=lambda p: (p.method != "GET", p.endpoint == "dashboard.logout"))
ALONE = [p for p in PROBES if changes_b(p)]


def test_workspace_a_never_reaches_workspace_b(app, db, world):
    send = Sender(app, db, world)
    found = [problem for probe in SHARED for problem in problems(send, probe)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("probe", ALONE, ids=[p.id for p in ALONE])
def test_workspace_a_never_changes_workspace_b(app, db, world, probe):
    found = problems(Sender(app, db, world), probe)
    assert found == [], "\n".join(found)


KEY_PROBES = [p for p in PROBES if p.kind == "key"]


def test_a_revoked_key_fails_on_every_key_route(app, db, world):
    assert revoke_keys(db.session, world.a.key[:12], workspace_id=world.a.id) == 1
    db.session.commit()
    send = Sender(app, db, world)
    for probe in KEY_PROBES:
        response = send(probe)
        assert response.status_code == 401, (probe.id, response.get_data(as_text=True))
    assert {p.endpoint for p in KEY_PROBES} >= {
        "api.write", "hightouch.endpoint", "census.endpoint", "segment.receive",
        "webhooks.hightouch_webhook", "connections_api.create"}
    census = app.test_client().post(f"/census/rpc?census_authentication={world.a.key}",
                                    json=rpc("list_objects"))
    webhook = app.test_client().post(f"/hightouch/webhook?token={world.a.key}", json=[])
    assert (census.status_code, webhook.status_code) == (401, 401)


def test_a_rotated_connection_token_fails(app, db, world):
    old = db.session.get(WebhookConnection, (world.b.id, world.ids["conn"])).auth_token
    client, token = signed_in(app, world.b.admin_email, world.b.admin_password)
    assert client.post(f"/connections/{world.ids['conn']}/rotate",
                       data={"csrf_token": token}).status_code == 302
    response = app.test_client().post(f"/webhooks/{world.ids['conn']}", json=[{"id": "x"}],
                                      headers={"Authorization": old})
    assert response.status_code == 401


DASHBOARD_PROBES = [p for p in PROBES if p.kind == "member"]


def test_signed_out_dashboard_requests_go_to_the_login_page(app, db, world):
    before = snapshot(db, world.a.id)
    client = app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    for probe in DASHBOARD_PROBES:
        path = probe.path.format(**world.ids)
        data = {**(probe.form or {}), "csrf_token": token} if probe.method == "POST" else None
        response = client.open(path, method=probe.method, data=data)
        assert response.status_code == 302, (probe.id, response.status_code)
        assert response.location.startswith("/login?next="), (probe.id, response.location)
    assert snapshot(db, world.a.id) == before
