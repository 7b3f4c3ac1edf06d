"""The "Alerts" section of a signal's page: its rules and deliveries; admins add and delete
rules there (both databases)."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from correlated.alerts.models import AlertRule, Delivery
from correlated.auth import add_member
from correlated.signals import service

from ..alerts.helpers import destination, entered
from ..conftest import make_tenant
from ..pages import signed_in, token_of


@pytest.fixture
def setup(app, db, tenant, fresh_g):
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = True
    signal = service.create(db.session, tenant.id, {
        "name": "Expansion", "category": "expansion",
        "conditions": [{"field": "plan", "op": "eq", "value": "free"}]})
    db.session.commit()
    hook = destination(db, tenant, "webhook", "http://127.0.0.1:9/hook", name="Ops hook")
    return signal.id, hook


def page(client, signal_id: str) -> str:
    response = client.get(f"/signals/{signal_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_admin_adds_and_deletes_a_rule_on_the_signal_page(app, db, tenant, setup):
    signal_id, hook = setup
    client, token = signed_in(app, tenant.admin_email, tenant.admin_password)
    html = page(client, signal_id)
    assert 'id="alerts"' in html and "No alerts: nobody hears" in html
    assert f'<option value="{hook.id}">Ops hook (webhook)</option>' in html
    form_token = token_of(html)
    added = client.post(f"/signals/{signal_id}/alerts", data={
        "csrf_token": form_token, "destination_id": hook.id, "on": "both", "cooldown_days": "3",
        "digest_threshold": "25", "owner_dimension": "owner_email"}, follow_redirects=True)
    text = added.get_data(as_text=True)
    assert "now go to “Ops hook”" in text
    rule = db.session.scalars(sa.select(AlertRule)).one()
    assert (rule.signal_id, rule.on, rule.cooldown_days, rule.digest_threshold,
            rule.owner_dimension) == (signal_id, "both", 3, 25, "owner_email")
    table = re.search(r'id="signal-alert-rules".*?</table>', text, re.S).group(0)
    assert "Ops hook" in table and "enters or exits" in table and "owner_email" in table
    gone = client.post(f"/signals/{signal_id}/alerts/{rule.id}/delete",
                       data={"csrf_token": token}, follow_redirects=True)
    assert "The alert rule is deleted" in gone.get_data(as_text=True)
    db.session.rollback()
    assert db.session.scalars(sa.select(AlertRule)).all() == []


def test_a_bad_rule_is_a_message_and_stores_nothing(app, db, tenant, setup):
    signal_id, _hook = setup
    client, token = signed_in(app, tenant.admin_email, tenant.admin_password)
    for data, message in (
            ({"destination_id": "nope", "on": "enter", "cooldown_days": "1",
              "digest_threshold": "10"}, "destination_id: no such destination"),
            ({"destination_id": "x", "on": "enter", "cooldown_days": "999",
              "digest_threshold": "10"}, "Number must be between 0 and 365")):
        response = client.post(f"/signals/{signal_id}/alerts", data={**data, "csrf_token": token},
                               follow_redirects=True)
        assert message in response.get_data(as_text=True)
    assert db.session.scalars(sa.select(AlertRule)).all() == []


def test_the_section_lists_the_signal_deliveries(app, db, tenant, setup):
    from correlated.alerts import enqueue
    from correlated.alerts.rules import create_rule

    signal_id, hook = setup
    create_rule(db.session, tenant.id, {"signal_id": signal_id, "destination_id": hook.id})
    enqueue(db.session, tenant.id, {"id": signal_id, "name": "Expansion", "object": "account"},
            [entered("acme")])
    db.session.commit()
    assert db.session.scalars(sa.select(Delivery)).one().status == "pending"
    client, _token = signed_in(app, tenant.admin_email, tenant.admin_password)
    deliveries = re.search(r'id="signal-deliveries".*?</table>', page(client, signal_id),
                           re.S).group(0)
    assert "signal.entered" in deliveries and "pending" in deliveries and "Ops hook" in deliveries


def test_members_see_the_rules_but_cannot_change_them(app, db, tenant, setup):
    signal_id, hook = setup
    add_member(db.session, tenant.workspace, "bob@acme.example", "a long password", "member")
    db.session.commit()
    client, token = signed_in(app, "bob@acme.example", "a long password")
    html = page(client, signal_id)
    assert 'id="alerts"' in html and 'id="create-signal-alert"' not in html
    refused = client.post(f"/signals/{signal_id}/alerts", data={
        "csrf_token": token, "destination_id": hook.id, "on": "enter", "cooldown_days": "1",
        "digest_threshold": "10"})
    assert refused.status_code == 403
    assert db.session.scalars(sa.select(AlertRule)).all() == []


def test_another_workspace_cannot_attach_to_the_signal(app, db, tenant, setup):
    signal_id, hook = setup
    other = make_tenant("globex")
    client, token = signed_in(app, other.admin_email, other.admin_password)
    response = client.post(f"/signals/{signal_id}/alerts", data={
        "csrf_token": token, "destination_id": hook.id, "on": "enter", "cooldown_days": "1",
        "digest_threshold": "10"})
    assert response.status_code == 404
    assert client.get(f"/signals/{signal_id}").status_code == 404
