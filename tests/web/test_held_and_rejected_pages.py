"""Issue 14 item 4 on the dashboard: rejected rows stand out in the ingest log, a connection's
all-or-nothing choice is a setting, and held requests are replayed with a button. Real
requests through the app, on SQLite and PostgreSQL."""
from __future__ import annotations

import sqlalchemy as sa

from correlated.models import Account

from .test_connections_page import admin, page, post, stored  # noqa: F401


def connection(admin, tenant) -> dict:
    response = admin.post("/api/v1/connections", headers=tenant.headers, json={
        "name": "Accounts", "object": "account"})
    assert response.status_code == 201
    return response.json


def accounts(db, tenant) -> list[str]:
    db.session.expire_all()
    return sorted(db.session.scalars(sa.select(Account.account_id)
                                     .where(Account.workspace_id == tenant.id)))


def test_rejected_rows_are_announced_above_the_log(admin, tenant):
    assert 'id="rejected-banner"' not in page(admin, "/connections")
    response = admin.post("/hightouch/webhook", headers=tenant.headers, json=[
        {"account_id": "a1", "name": "Acme"}, {"user_id": "u9", "email": "not an email"},
        {"user_id": "u8", "email": "also bad"}])
    assert response.status_code == 201
    html = page(admin, "/connections")
    banner = html.split('id="rejected-banner"')[1].split("</div>")[0]
    assert "2 rows rejected</strong> in 1 request over the last 7 days" in banner
    assert 'href="/connections?rejected=1#ingest-log"' in banner
    assert "has-rejections" in html.split('id="ingest-log-table"')[1]


def test_an_all_or_nothing_refusal_lists_its_rejected_rows(admin, tenant, db):
    refused = admin.post("/hightouch/webhook?all_or_nothing=true", headers=tenant.headers,
                         json=[{"account_id": "a1", "name": "Acme"},
                               {"user_id": "u9", "email": "not an email"}])
    assert refused.status_code == 422
    table = page(admin, "/connections").split('id="ingest-log-table"')[1]
    assert "refused, nothing stored" in table
    assert "all or nothing: 1 of 2 rows rejected, so none was stored" in table
    assert "row 2 · u9:</span> email: not a valid email address" in table
    assert accounts(db, tenant) == []


def test_all_or_nothing_is_saved_from_the_settings_form(admin, tenant, db):
    conn = connection(admin, tenant)
    here = f"/connections/{conn['id']}"
    assert "All or nothing: refuse the whole batch" in page(admin, here)
    response = post(admin, f"{here}/settings", {"name": "Accounts", "behavior": "upsert",
                                                "enforce_auth": "y", "all_or_nothing": "y"},
                    here)
    assert response.status_code == 302
    assert stored(db, tenant, conn["id"]).all_or_nothing is True


def test_held_requests_are_replayed_with_the_button(admin, tenant, db):
    conn = connection(admin, tenant)
    here, header = f"/connections/{conn['id']}", conn["authorization_header"]["value"]
    for n in range(2):
        held = admin.post(f"/webhooks/{conn['id']}", headers={"Authorization": header},
                          json=[{"id": f"a{n}", "company": f"Company {n}"}])
        assert held.status_code == 202
    html = page(admin, here)
    assert "<strong>2 requests</strong> held, not yet written." in html
    assert "Replay held requests</button>" in html and "Save the mapping (it enables" in html
    response = post(admin, f"{here}/mapping", {"wrapper": "", "id_field": "id",
                                               "name_field": "company", "enable": "y"}, here)
    assert response.status_code == 302
    assert accounts(db, tenant) == []  # saving the mapping writes nothing by itself
    replayed = post(admin, f"{here}/replay", {}, here)
    assert replayed.status_code == 302
    assert accounts(db, tenant) == ["a0", "a1"]
    after = page(admin, here)
    assert "2 held request(s) written" in after and "None: nothing received is waiting" in after
