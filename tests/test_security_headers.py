"""Browser-hardening headers on every kind of response; secrets never in logs or stored payloads."""
from __future__ import annotations

import json
import logging

import pytest
import requests
import sqlalchemy as sa

from correlated import create_app
from correlated.extensions import db as _db
from correlated.models import IngestLog
from .web.test_dashboard import login

PASSWORD_IN_URL = "hunter2-in-a-url"


def assert_hardened(response) -> None:
    policy = response.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]  # no inline script, no eval
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_dashboard_pages_are_hardened(client, tenant):
    assert_hardened(client.get("/login"))
    login(client, tenant.admin_email, tenant.admin_password)
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert_hardened(page)
    with client.get("/static/css/app.css") as static:
        assert_hardened(static)


def test_api_and_metrics_responses_are_hardened(client, tenant):
    answer = client.get("/api/v1/accounts", headers=tenant.headers)
    assert answer.status_code == 200 and answer.is_json
    assert_hardened(answer)
    assert_hardened(client.get("/metrics"))


@pytest.mark.parametrize("method, path, status", [
    ("get", "/api/v1/accounts", 401),  # JSON error for machines
    ("get", "/no/such/page", 404),  # HTML error page for people
    ("put", "/v1/batch", 405),
    ("post", "/census/rpc", 401),
])
def test_error_responses_are_hardened(client, method, path, status):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert_hardened(response)


def test_too_large_and_rate_limited_responses_are_hardened(database_url, tenant):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "x",
                      "MAX_CONTENT_LENGTH": 100, "RATE_LIMIT": "1 per minute"})
    client = app.test_client()
    too_large = client.post("/api/v1/accounts", headers=tenant.headers, data="x" * 200,
                            content_type="application/json")
    limited = client.post("/api/v1/accounts", headers=tenant.headers, json={})
    with app.app_context():
        _db.engine.dispose()
    assert (too_large.status_code, limited.status_code) == (413, 429)
    assert_hardened(too_large)
    assert_hardened(limited)


def test_an_unexpected_server_error_is_hardened(database_url):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "x"})

    @app.get("/api/v1/boom")
    def boom():
        raise RuntimeError("a bug")

    response = app.test_client().get("/api/v1/boom")
    assert response.status_code == 500 and response.is_json
    assert_hardened(response)


# --- secrets never in logs ------------------------------------------------------------------

def send_a_key_every_way(base: str, key: str) -> None:
    """The key in each place a protocol accepts it, plus a password in a query string."""
    rows = [{"account_id": "a1", "name": "Acme", "api_key": "row-secret", "password": "pw"}]
    requests.post(f"{base}/hightouch/webhook?object=account&token={key}", json=rows, timeout=10)
    requests.post(f"{base}/census/rpc?census_authentication={key}", timeout=10,
                  json={"jsonrpc": "2.0", "method": "test_connection", "params": {}, "id": 1})
    requests.post(f"{base}/v1/batch", auth=(key, ""), timeout=10, json={
        "writeKey": key, "batch": [{"type": "track", "event": "E", "userId": "u1",
                                    "messageId": "m1"}]})
    requests.post(f"{base}/v1/track", timeout=10, json={  # writeKey only in the body
        "writeKey": key, "event": "E", "userId": "u1", "messageId": "m2"})
    requests.post(f"{base}/api/v1/accounts", headers={"Authorization": f"Bearer {key}"},
                  json=rows, timeout=10)
    requests.get(f"{base}/api/v1/accounts?password={PASSWORD_IN_URL}", timeout=10,
                 headers={"Authorization": f"Bearer {key}"})


def test_no_log_line_holds_a_key_or_password(live_server, tenant, caplog):
    """Our request lines and werkzeug's both show the requests, never their secrets."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="correlated")
    send_a_key_every_way(live_server, tenant.key)

    server_side = [r for r in caplog.records if not r.name.startswith("urllib3")]
    text = "\n".join(caplog.handler.format(r) for r in server_side)
    text += "\n".join(json.dumps(getattr(r, "fields", None)) for r in server_side)
    assert "/hightouch/webhook" in text and "census_authentication=[redacted]" in text
    assert tenant.key not in text and PASSWORD_IN_URL not in text


def test_stored_ingest_log_payloads_hold_no_key(live_server, tenant, db):
    send_a_key_every_way(live_server, tenant.key)
    db.session.rollback()
    entries = db.session.scalars(sa.select(IngestLog)).all()
    assert {e.protocol for e in entries} >= {"webhook", "segment", "api"}
    stored = json.dumps([[e.payload, e.rejected_sample, e.error] for e in entries], default=str)
    assert tenant.key not in stored and "row-secret" not in stored
    segment = next(e for e in entries if e.protocol == "segment")
    assert segment.payload["writeKey"] == "[redacted]"
