"""Browser SDK paths (/v1/t, i, p, g, a, b) by hand: the public write key, text/plain bodies,
allowed origins and CORS. tests/protocols/test_segment_chromium.py drives analytics-next."""
from __future__ import annotations

import json

import pytest

from correlated.models import Account, Event, IngestLog, User
from correlated.protocols.segment_browser import issue_browser_key, parse_origins
from tests.protocols.test_segment_http import one, stored

SHOP = "https://shop.example.com"


@pytest.fixture
def browser_key(db, tenant) -> str:
    key = issue_browser_key(db.session, tenant.workspace)
    tenant.workspace.allowed_origins = [SHOP, "http://localhost:8080"]
    db.session.commit()
    return key


def beacon(client, path: str, body, origin: str | None = SHOP):
    """What analytics-next sends: a text/plain JSON body, the write key inside, an Origin."""
    headers = {"Content-Type": "text/plain"} | ({"Origin": origin} if origin else {})
    return client.post(path, data=json.dumps(body), headers=headers)


def test_each_browser_path_stores_its_call_and_answers_with_cors(db, client, browser_key):
    calls = [
        ("/v1/i", {"type": "identify", "userId": "u1", "traits": {"email": "ada@acme.io"}}),
        ("/v1/g", {"type": "group", "userId": "u1", "groupId": "acme",
                   "traits": {"name": "Acme"}}),
        ("/v1/t", {"type": "track", "userId": "u1", "event": "Clicked", "messageId": "t1"}),
        ("/v1/p", {"type": "page", "userId": "u1", "name": "Pricing", "messageId": "p1"}),
        ("/v1/a", {"type": "alias", "userId": "u1", "previousId": "anon-1"}),
        ("/v1/b", {"batch": [{"type": "track", "userId": "u1", "event": "Batched",
                              "messageId": "b1"}]}),
    ]
    for path, body in calls:
        response = beacon(client, path, {**body, "writeKey": browser_key})
        assert (response.status_code, response.get_json()) == (200, {"success": True}), path
        assert response.headers["Access-Control-Allow-Origin"] == SHOP
        assert "Origin" in response.headers["Vary"]
    assert one(db, User).account_id == "acme" and one(db, Account).name == "Acme"
    assert sorted(e.event for e in stored(db, Event)) == ["Batched", "Clicked",
                                                          "Page Viewed: Pricing"]
    logs = stored(db, IngestLog)
    assert len(logs) == 6 and {log.payload.get("writeKey") for log in logs} == {"[redacted]"}


@pytest.mark.parametrize("origin, reason", [
    ("https://evil.example", "Origin: https://evil.example is not allowed to send to this "
                             "workspace; an admin adds it under Settings → Browser SDKs"),
    (None, "Origin: required (the browser paths take requests from web pages only)"),
], ids=["other-origin", "no-origin"])
def test_an_origin_not_listed_is_refused_without_cors_and_logged(db, client, browser_key,
                                                                 origin, reason):
    body = {"userId": "u1", "event": "Clicked", "writeKey": browser_key}
    response = beacon(client, "/v1/t", body, origin=origin)
    assert response.status_code == 403 and response.get_json()["message"] == reason
    assert response.get_json()["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response.headers
    assert stored(db, Event) == []
    assert one(db, IngestLog).error == reason


def test_no_origin_is_allowed_until_an_admin_lists_it(db, client, tenant):
    key = issue_browser_key(db.session, tenant.workspace)
    db.session.commit()
    assert tenant.workspace.allowed_origins == []
    response = beacon(client, "/v1/t", {"userId": "u1", "event": "E", "writeKey": key})
    assert response.status_code == 403


def test_a_wildcard_is_an_explicit_choice(db, client, browser_key, tenant):
    tenant.workspace.allowed_origins = ["*"]
    db.session.commit()
    response = beacon(client, "/v1/t", {"userId": "u1", "event": "E", "writeKey": browser_key},
                      origin="https://anywhere.example")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://anywhere.example"


@pytest.mark.parametrize("key, text", [
    (None, "send the workspace's browser write key"),
    ("pub_unknown", "unknown or replaced browser write key"),
    ("api", "an API key must never be in a web page"),
], ids=["none", "unknown", "api-key"])
def test_only_the_browser_write_key_is_accepted(db, client, tenant, browser_key, key, text):
    body = {"userId": "u1", "event": "E", "writeKey": tenant.key if key == "api" else key}
    response = beacon(client, "/v1/t", body)
    assert response.status_code == 401 and text in response.get_json()["message"]
    # ...and the browser key is no API key: the server paths refuse it.
    response = client.post("/v1/track", json={"userId": "u1", "event": "E",
                                              "writeKey": browser_key})
    assert response.status_code == 401
    assert stored(db, Event) == []


def test_a_preflight_is_answered_for_an_origin_some_workspace_allows(db, client, browser_key):
    headers = {"Origin": SHOP, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type"}
    response = client.options("/v1/t", headers=headers)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    assert response.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    response = client.options("/v1/t", headers={**headers, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_bad_message_from_an_allowed_page_is_readable_there(db, client, browser_key):
    response = beacon(client, "/v1/i", {"type": "track", "userId": "u1", "writeKey": browser_key})
    assert response.status_code == 400
    assert response.headers["Access-Control-Allow-Origin"] == SHOP


def test_origins_are_normalized_as_browsers_send_them():
    assert parse_origins("https://Shop.Example.com/\nhttp://localhost:8080, "
                         "https://a.example:443 https://shop.example.com") == [
        "https://shop.example.com", "http://localhost:8080", "https://a.example"]
    for bad in ("shop.example.com", "https://shop.example.com/path", "ftp://x.example"):
        with pytest.raises(ValueError):
            parse_origins(bad)


def test_a_browser_key_writes_to_its_own_workspace_only(db, client, tenant, other_tenant,
                                                        browser_key):
    theirs = issue_browser_key(db.session, other_tenant.workspace)
    other_tenant.workspace.allowed_origins = [SHOP]
    db.session.commit()
    for key, message_id in ((browser_key, "mine"), (theirs, "theirs")):
        body = {"userId": "u1", "event": "E", "messageId": message_id, "writeKey": key}
        assert beacon(client, "/v1/t", body).status_code == 200
    assert {(e.workspace_id, e.event_id) for e in stored(db, Event)} == {
        (tenant.id, "mine"), (other_tenant.id, "theirs")}
