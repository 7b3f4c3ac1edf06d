"""Resources and logs (issue #13, 15): huge page numbers, a match_property SQLite cannot
quote, multi-member gzip, `?key=` in request logs, SQL parameters in error logs."""
from __future__ import annotations

import gzip
import json
import logging

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from correlated.models import Account, WebhookConnection
from correlated.observability import JsonFormatter

from .pages import signed_in


@pytest.mark.parametrize("path", ["/accounts", "/users"])
@pytest.mark.parametrize("page", ["999999999999999999", str(10**18 + 1), str(2**63)])
def test_a_huge_page_number_goes_to_the_last_page(app, client, tenant, fresh_g, path, page):
    client.post("/api/v1/accounts", headers=tenant.headers, json=[{"account_id": "a1",
                                                                   "name": "A"}])
    browser, _ = signed_in(app, tenant.admin_email, tenant.admin_password)
    response = browser.get(f"{path}?page={page}")
    assert response.status_code in (200, 302), response.status_code  # was 500 on both
    if response.status_code == 302:
        assert "page=" not in response.headers["Location"] or "page=1" in response.headers[
            "Location"]


def connection(client, tenant, **mapping) -> dict:
    return client.post("/api/v1/connections", headers=tenant.headers, json={
        "name": "Match", "object": "account", "behavior": "update", **mapping})


@pytest.mark.parametrize("prop", ['plan"', 'a\\b', "x\ny"])
def test_a_match_property_sqlite_cannot_quote_is_refused_naming_the_setting(client, tenant,
                                                                            prop):
    response = connection(client, tenant, mapping={"match_property": prop,
                                                   "match_field": "plan"})
    assert response.status_code == 422
    assert "mapping.match_property" in json.dumps(response.get_json())
    created = connection(client, tenant).get_json()
    response = client.patch(f"/api/v1/connections/{created['id']}", headers=tenant.headers,
                            json={"mapping": {"match_property": prop, "match_field": "plan"}})
    assert response.status_code == 422
    assert "mapping.match_property" in json.dumps(response.get_json())


def test_a_stored_bad_match_property_rejects_rows_instead_of_failing(db, client, tenant):
    """A connection saved before the rule: its rows are refused with a reason, never a 500."""
    client.post("/api/v1/accounts", headers=tenant.headers, json=[
        {"account_id": "a1", "name": "A", "plan": "pro"}])
    created = connection(client, tenant, mapping={"match_property": "plan",
                                                  "match_field": "plan"}).get_json()
    db.session.rollback()
    stored = db.session.get(WebhookConnection, (tenant.id, created["id"]))
    stored.mapping = {"match_property": 'plan"', "match_field": "plan"}
    stored.enabled = True
    db.session.commit()
    response = client.post(f"/webhooks/{created['id']}", json=[{"plan": "pro"}],
                           headers={"Authorization": created["authorization_header"]["value"]})
    assert response.status_code < 500, response.get_data(as_text=True)


def test_every_member_of_a_gzip_body_is_read(db, client, tenant):
    first = gzip.compress(b'[{"account_id": "g1", "name": "One"},')
    second = gzip.compress(b'{"account_id": "g2", "name": "Two"}]')
    response = client.post("/api/v1/accounts", data=first + second, headers={
        **tenant.headers, "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 200, response.get_data(as_text=True)
    db.session.rollback()
    assert set(db.session.scalars(sa.select(Account.account_id))) == {"g1", "g2"}


def test_the_size_limit_holds_across_gzip_members(app, client, tenant):
    limit = app.config["MAX_CONTENT_LENGTH"]
    member = gzip.compress(b" " * (limit // 2 + 1))
    response = client.post("/api/v1/accounts", data=member + member, headers={
        **tenant.headers, "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 413 and "once decompressed" in response.get_json()["error"]


@pytest.mark.parametrize("name", ["key", "apikey", "writeKey"])
def test_a_key_in_the_query_never_reaches_the_request_log(client, tenant, caplog, name):
    caplog.set_level(logging.INFO, logger="correlated.request")
    client.get(f"/api/v1/accounts?{name}={tenant.key}&limit=1")
    line = [r for r in caplog.records if r.name == "correlated.request"][-1]
    assert tenant.key not in caplog.text and tenant.key not in json.dumps(line.fields)
    assert "limit=1" in line.fields["query"]


def test_a_database_error_logs_no_parameters_and_a_bounded_line(app, db):
    secret_value = "customer-data-" + "x" * 6_500_000
    with pytest.raises(SQLAlchemyError) as failure:
        db.session.execute(sa.text("SELECT * FROM no_such_table WHERE x = :value"),
                           {"value": secret_value})
    db.session.rollback()
    assert "customer-data-" not in str(failure.value)
    record = logging.LogRecord("correlated", logging.ERROR, __file__, 1, "Exception on /x",
                               None, (type(failure.value), failure.value, None))
    record.msg = "Exception: " + "y" * 7_000_000  # whatever a message carries
    line = JsonFormatter().format(record)
    assert len(line) < 40_000 and "characters cut" in line
    assert json.loads(line)["exception"].endswith(str(failure.value).splitlines()[-1][-200:])
