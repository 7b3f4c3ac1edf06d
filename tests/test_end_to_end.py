"""Across protocols: an account synced by REST, users through Hightouch, events through Segment."""
import requests
import segment.analytics as segment_sdk
import sqlalchemy as sa

from correlated.models import Event, User
from correlated.analytics.rollups import account_metrics, metrics_record
from correlated.analytics.summaries import ensure_fresh


def test_three_protocols_roll_up_to_one_account(db, tenant, live_server):
    acc = requests.post(f"{live_server}/api/v1/accounts", headers=tenant.headers, timeout=10,
                        json={"account_id": "acme", "name": "Acme", "plan": "pro"})
    assert acc.status_code == 200 and acc.json()["accepted"] == 1
    rpc = requests.post(f"{live_server}/hightouch/rpc", headers=tenant.headers, timeout=10, json={
        "jsonrpc": "2.0", "id": 1, "method": "add", "params": {
            "idColumn": "uid",
            "configuration": {"object": "user", "mode": "upsert",
                              "identifierMapping": {"from": "uid", "to": "user_id"},
                              "mappings": [{"from": "mail", "to": "email"},
                                           {"from": "acct", "to": "account_id"}]},
            "rows": [{"uid": "u1", "mail": "ada@acme.io", "acct": "acme"},
                     {"uid": "u2", "mail": "not-an-email", "acct": "acme"}]}})
    rejected = rpc.json()["result"]["rejectedRows"]
    assert [r["id"] for r in rejected] == ["u2"] and "email" in rejected[0]["reason"]
    client = segment_sdk.Client(tenant.key, host=live_server, sync_mode=True, max_retries=1)
    client.track(user_id="u1", event="report_created", properties={"widgets": 3})
    client.flush()
    event = db.session.scalars(sa.select(Event)).one()
    assert (event.account_id, event.properties) == ("acme", {"widgets": 3})
    assert db.session.scalars(sa.select(User.user_id)).all() == ["u1"]
    ensure_fresh(db.session, tenant.id)
    metrics = metrics_record(account_metrics(db.session, tenant.id, ["acme"]), "acme")
    assert (metrics["users"], metrics["events_30d"], metrics["active_users_7d"]) == (1, 1, 1)
