"""The signals pages through the test client with a signed-in member, on both databases."""
from __future__ import annotations

import json

from correlated.ingest.engine import ingest
from correlated.models import utcnow
from correlated.signals import evaluate
from correlated.signals.models import Signal

from ..pages import signed_in
from .test_evaluate import load

CONDITIONS = [{"field": "plan", "op": "eq", "value": "free"},
              {"metric": "active_users", "window_days": 120, "op": "gte", "value": 3}]


def test_build_preview_save_and_see_the_signal(app, db, tenant, fresh_g):
    load(db.session, tenant.workspace)
    client, token = signed_in(app, tenant.admin_email, tenant.admin_password)
    builder = client.get("/signals/new")
    assert builder.status_code == 200 and b"signal-pickers" in builder.data
    form = {"name": "Expansion", "category": "expansion", "object": "account", "match": "all",
            "conditions": json.dumps(CONDITIONS), "csrf_token": token}
    preview = client.post("/signals/preview", data=form).get_json()
    assert preview["count"] == 4 and preview["sample"][0]["name"].startswith("Acme")
    bad = client.post("/signals/preview", data={**form, "conditions": '[{"field": "nope"}]'})
    assert bad.status_code == 422 and "conditions[0]" in bad.get_json()["problems"][0]
    saved = client.post("/signals/new", data=form)
    assert saved.status_code == 302
    signal = db.session.query(Signal).one()
    evaluate.run(db.session, tenant.id, signal.id, utcnow())
    ingest(db.session, tenant.workspace, "account", "update", [{"account_id": "a1", "plan": "free"}])
    evaluate.run(db.session, tenant.id, signal.id, utcnow(), force=True)
    page = client.get(f"/signals/{signal.id}").get_data(as_text=True)
    assert "Expansion" in page and "Acme 1" in page and "entered" in page
    listing = client.get("/signals").get_data(as_text=True)
    assert "Expansion" in listing and "<polyline" in listing
    account = client.get("/accounts/a1").get_data(as_text=True)
    assert "dimension-changes" in account and "free" in account and "Expansion" in account
    assert "Entered a signal this week" in client.get("/").get_data(as_text=True)
    assert "Acme 1" in client.get("/").get_data(as_text=True)
    assert "entity-signals" in client.get("/users/u1").get_data(as_text=True)
