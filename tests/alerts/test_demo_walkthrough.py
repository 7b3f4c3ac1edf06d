"""The issue's walkthrough, end to end on both databases: in the demo workspace an admin adds a
webhook destination (a local receiver) and a Slack one in the dashboard, attaches both to the
expansion signal on its page, syncs data that pushes a new account in, and a real `correlated
worker` process delivers both; the webhook's signature verifies with `standardwebhooks`, both
deliveries are recorded and shown, and the export API lists the account in the signal."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta

import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from correlated.alerts.models import Delivery
from correlated.demo import load_demo
from correlated.models import utcnow
from correlated.signals.models import Signal

from ..pages import signed_in, token_of
from ..servers import ROOT
from .test_worker_process import kill, wait_until


def start_worker(database_url: str, tmp_path) -> subprocess.Popen:
    env = {**os.environ, "CORRELATED_DATABASE_URL": database_url,
           "CORRELATED_SECRET_KEY": "walkthrough", "CORRELATED_ALLOW_PRIVATE_DESTINATIONS": "true",
           "CORRELATED_PUBLIC_URL": "https://correlated.example"}
    with open(tmp_path / "worker.log", "a") as log:
        return subprocess.Popen([sys.executable, "-m", "correlated", "worker", "--interval",
                                 "0.2"], env=env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def add_destination(client, token, name, kind, target) -> str:
    page = client.post("/settings/destinations", data={
        "name": name, "kind": kind, "target": target, "csrf_token": token},
        follow_redirects=True)
    assert page.status_code in (200, 201), page.get_data(as_text=True)
    return page.get_data(as_text=True)


def sync_a_busy_free_account(client, tenant) -> None:
    """What a Hightouch sync and the product's events would send: a free account, four users,
    and enough reports this week to qualify for the expansion signal."""
    headers = tenant.headers
    assert client.post("/api/v1/accounts", headers=headers, json=[
        {"account_id": "newco", "name": "Newco Ltd", "plan": "free",
         "owner": "Dana Scully"}]).status_code == 200
    assert client.post("/api/v1/users", headers=headers, json=[
        {"user_id": f"newco-{i}", "email": f"p{i}@newco.example", "account_id": "newco"}
        for i in range(4)]).status_code == 200
    now = utcnow()
    events = [{"event": "report_created", "user_id": f"newco-{i % 4}", "account_id": "newco",
               "timestamp": (now - timedelta(hours=i + 1)).isoformat()} for i in range(10)]
    assert client.post("/api/v1/events", headers=headers, json=events).status_code == 200


def test_demo_walkthrough(database_url, app, db, tenant, allow_private, receiver,
                          slack_receiver, fresh_g, tmp_path):
    load_demo(db.session, tenant.workspace, accounts=8, days=35)
    expansion = db.session.scalars(sa.select(Signal.id).where(
        Signal.workspace_id == tenant.id, Signal.category == "expansion")).one()
    client, token = signed_in(app, tenant.admin_email, tenant.admin_password)

    shown = add_destination(client, token, "Ops hook", "webhook", receiver.url)
    secret = re.search(r'id="new-secret-value">(whsec_[^<]+)<', shown).group(1)
    add_destination(client, token, "Sales Slack", "slack", slack_receiver.url)
    page = client.get(f"/signals/{expansion}").get_data(as_text=True)
    options = dict((label, value) for value, label in re.findall(
        r'<option value="([^"]+)">([^<]+) \((?:webhook|slack)\)</option>', page))
    for name in ("Ops hook", "Sales Slack"):
        added = client.post(f"/signals/{expansion}/alerts", data={
            "csrf_token": token_of(page), "destination_id": options[name], "on": "enter",
            "cooldown_days": "1", "digest_threshold": "10", "owner_dimension": "owner"},
            follow_redirects=True)
        assert f"now go to “{name}”" in added.get_data(as_text=True)

    before = utcnow()
    sync_a_busy_free_account(client, tenant)
    db.session.remove()
    worker = start_worker(database_url, tmp_path)
    try:
        def arrived() -> bool:
            return any(b"newco" in r.body for r in receiver.received) and \
                any(b"newco" in r.body for r in slack_receiver.received)
        assert wait_until(arrived, 60), (tmp_path / "worker.log").read_text()
        assert wait_until(lambda: _delivered(db) >= 2, 30), (tmp_path / "worker.log").read_text()
    finally:
        kill(worker)

    [hook] = [r for r in receiver.received if b"newco" in r.body]
    Webhook(secret).verify(hook.body, hook.headers)  # the library's check, not ours
    body = json.loads(hook.body)
    assert body["type"] == "signal.entered"
    assert body["data"]["signal"]["id"] == expansion
    assert body["data"]["account"]["id"] == "newco"
    assert body["data"]["account"]["owner"] == "Dana Scully"
    assert body["data"]["values"]  # what qualified it
    [slack] = [r for r in slack_receiver.received if b"newco" in r.body]
    assert "Newco Ltd" in json.loads(slack.body)["text"]  # the receiver checked the Block Kit shape

    statuses = {d.destination_id: d.status for d in db.session.scalars(sa.select(Delivery).where(
        Delivery.entity_key == "account:newco"))}
    assert sorted(statuses.values()) == ["delivered", "delivered"]
    section = re.search(r'id="signal-deliveries".*?</table>',
                        client.get(f"/signals/{expansion}").get_data(as_text=True), re.S)
    assert section.group(0).count("delivered") >= 2

    listed = client.get("/api/v1/accounts", headers=tenant.headers, query_string={
        "include": "signals", "updated_since": before.isoformat()}).get_json()["data"]
    newco = next(a for a in listed if a["account_id"] == "newco")
    assert expansion in [s["id"] for s in newco["signals"]]  # (a new account: onboarding too)


def _delivered(db) -> int:
    db.session.rollback()
    return db.session.scalar(sa.select(sa.func.count()).select_from(Delivery).where(
        Delivery.entity_key == "account:newco", Delivery.status == "delivered"))
