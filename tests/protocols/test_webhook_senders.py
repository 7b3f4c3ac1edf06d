"""Issue 14 items 3-7: the webhook senders as they really send (Hightouch and Census HTTP
Request, Segment's Webhooks (Actions)), over real HTTP on SQLite and PostgreSQL.

The bodies are the ones their documentation and source show: Segment's `send` action posts the
whole message (`data` defaults to `$.`) with the method the user picks (POST, PUT or PATCH),
and an array of messages when batching; Census renders its batch body with a Liquid `for` loop
(rendered here with python-liquid); Hightouch's HTTP Request offers form-urlencoded payloads.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import liquid
import pytest
import requests
import sqlalchemy as sa

from correlated.models import Account, Event, HeldPayload, IngestLog, User

from .test_webhooks import last_log, stored

TS = "2024-05-01T10:00:00Z"


@pytest.fixture
def send(live_server, tenant):
    def request(path, method="POST", headers=None, **kwargs):
        headers = tenant.headers if headers is None else headers
        return requests.request(method, f"{live_server}{path}", headers=headers, timeout=30,
                                **kwargs)
    return request


@pytest.fixture
def connection(send):
    """A connection made through the API: create(settings) -> its JSON (url, header value)."""
    def create(obj="user", **settings):
        response = send("/api/v1/connections", json={"name": "Sender", "object": obj,
                                                      **settings})
        assert response.status_code == 201, response.text
        return response.json()
    return create


def with_header(conn: dict) -> dict[str, str]:
    return {"Authorization": conn["authorization_header"]["value"]}


# Segment's Webhooks (Actions) `send`: the whole identify message, as Segment delivers it.
IDENTIFY = {
    "type": "identify", "userId": "u1", "anonymousId": "anon-1", "messageId": "m-1",
    "timestamp": TS, "receivedAt": TS, "sentAt": TS, "channel": "server",
    "traits": {"email": "ada@acme.io", "plan": "pro"},
    "context": {"library": {"name": "analytics-python", "version": "2.3.2"}},
}
USER_MAPPING = {"id_field": "userId", "email_field": "traits.email"}


# --- item 3: PUT and PATCH upsert ------------------------------------------------------------

def test_put_and_patch_upsert_on_the_quick_endpoint(send, db, workspace):
    created = send("/hightouch/webhook", "PUT", json=[{"account_id": "a1", "name": "Acme"}])
    assert created.status_code == 201, created.text
    assert created.json()["created"] == 1
    changed = send("/hightouch/webhook", "PATCH", json=[{"account_id": "a1", "name": "Acme",
                                                              "plan": "pro"}])
    assert changed.status_code == 201 and changed.json()["updated"] == 1
    (account,) = stored(db, Account, workspace)
    assert (account.name, account.traits) == ("Acme", {"plan": "pro"})
    removed = send("/hightouch/webhook", "DELETE", json=[{"account_id": "a1"}])
    assert removed.status_code == 202
    assert stored(db, Account, workspace)[0].archived_at is not None


def test_segment_webhooks_actions_put_patch_and_a_batch(send, connection, db, workspace):
    conn = connection("user", mapping=USER_MAPPING, enabled=True)
    path = f"/webhooks/{conn['id']}"
    put = send(path, "PUT", headers=with_header(conn), json=IDENTIFY)
    assert put.status_code == 201, put.text
    renamed = {**IDENTIFY, "messageId": "m-2", "traits": {"email": "ada@acme.io", "plan": "team"}}
    other = {**IDENTIFY, "userId": "u2", "messageId": "m-3", "traits": {"email": "bo@acme.io"}}
    batch = send(path, "PATCH", headers=with_header(conn), json=[renamed, other])  # batching on
    assert batch.status_code == 201, batch.text
    assert (batch.json()["created"], batch.json()["updated"]) == (1, 1)
    users = {u.user_id: u for u in stored(db, User, workspace)}
    assert sorted(users) == ["u1", "u2"] and users["u1"].traits["traits"] == {"plan": "team"}
    assert send(path, "DELETE", headers=with_header(conn), json=other).status_code == 202
    assert {u.user_id for u in stored(db, User, workspace) if u.archived_at is None} == {"u1"}


# --- item 4: all or nothing, the log, held requests -----------------------------------------

BATCH = [{"account_id": "a1", "name": "Acme"}, {"user_id": "u9", "email": "not an email"}]


def test_all_or_nothing_on_the_quick_endpoint(send, db, workspace):
    refused = send("/hightouch/webhook", json=BATCH, params={"all_or_nothing": "true"})
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["error"].startswith("all or nothing: 1 of 2 rows rejected, so none was stored")
    assert body["accepted"] == 0 and [r["index"] for r in body["rejected"]] == [1]
    assert stored(db, Account, workspace) == []
    log = last_log(db, workspace)
    assert (log.rows_received, log.rows_accepted, log.rows_rejected) == (2, 0, 1)
    assert log.error.startswith("all or nothing") and log.rejected_sample[0]["index"] == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IngestLog)) == 1
    fixed = send("/hightouch/webhook", json=BATCH[:1], params={"all_or_nothing": "1"})
    assert fixed.status_code == 201
    partial = send("/hightouch/webhook", json=BATCH)  # the default: the good rows are kept
    assert partial.status_code == 201 and partial.json()["accepted"] == 1
    assert send("/hightouch/webhook", json=BATCH,
                params={"all_or_nothing": "maybe"}).status_code == 400


def test_all_or_nothing_is_a_connection_setting(send, connection, db, workspace):
    conn = connection("user", mapping=USER_MAPPING, enabled=True)
    bad = {**IDENTIFY, "userId": "u2", "traits": {"email": "not an email"}}
    partial = send(f"/webhooks/{conn['id']}", headers=with_header(conn), json=[IDENTIFY, bad])
    assert partial.status_code == 201 and partial.json()["accepted"] == 1
    changed = send(f"/api/v1/connections/{conn['id']}", "PATCH", json={"all_or_nothing": True})
    assert changed.status_code == 200 and changed.json()["all_or_nothing"] is True
    other = {**IDENTIFY, "userId": "u3", "traits": {"email": "cy@acme.io"}}
    refused = send(f"/webhooks/{conn['id']}", headers=with_header(conn), json=[other, bad])
    assert refused.status_code == 422 and refused.json()["rejected"][0]["index"] == 1
    assert {u.user_id for u in stored(db, User, workspace)} == {"u1"}
    assert last_log(db, workspace).error.startswith("all or nothing: 1 of 2 rows")
    assert send(f"/api/v1/connections/{conn['id']}", "PATCH",
                json={"all_or_nothing": "yes"}).status_code == 422


def test_a_disabled_connection_holds_requests_for_replay(send, connection, db, workspace):
    conn = connection("event")  # disabled, no mapping yet: the sync was switched on too early
    path = f"/webhooks/{conn['id']}"
    track = {"type": "track", "event": "Report Run", "userId": "u1", "messageId": "t-1",
             "properties": {"rows": 12}}
    for method, message in (("POST", track), ("PUT", {**track, "messageId": "t-2"})):
        held = send(path, method, headers=with_header(conn), json=message)
        assert held.status_code == 202, held.text
        assert "held" in held.json()["message"] and held.json()["written"] == 0
    assert held.json()["held"] == 2
    assert stored(db, Event, workspace) == []
    received = [h.received_at for h in db.session.scalars(sa.select(HeldPayload))]
    early = send(f"/api/v1/connections/{conn['id']}/replay", "POST")
    assert early.status_code == 409 and "disabled" in early.json()["error"]
    mapping = {"event_field": "event", "user_id_field": "userId", "event_id_field": "messageId"}
    saved = send(f"/api/v1/connections/{conn['id']}", "PATCH",
                 json={"mapping": mapping, "enabled": True})
    assert saved.status_code == 200 and saved.json()["held_requests"] == 2
    replayed = send(f"/api/v1/connections/{conn['id']}/replay", "POST")
    assert replayed.status_code == 200, replayed.text
    assert (replayed.json()["replayed"], replayed.json()["held"]) == (2, 0)
    events = sorted(stored(db, Event, workspace), key=lambda e: e.event_id)
    assert [(e.event_id, e.event, e.user_id) for e in events] == \
        [("t-1", "Report Run", "u1"), ("t-2", "Report Run", "u1")]
    assert events[0].properties["properties"] == {"rows": 12}
    # Each event happened when its request was received, not when it was replayed.
    assert [_aware(e.timestamp) for e in events] == [_aware(t) for t in received]
    assert send(f"/api/v1/connections/{conn['id']}/replay", "POST").json()["replayed"] == 0


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def test_held_requests_are_bounded_and_keep_their_method(app, send, connection, db, workspace):
    app.config["HELD_PAYLOADS_PER_CONNECTION"] = 2
    conn = connection("account", mapping={"id_field": "id", "name_field": "company"})
    path = f"/webhooks/{conn['id']}"
    assert send(path, headers=with_header(conn), json=[{"id": "a1", "company": "Acme"},
                                                       {"id": "a2", "company": "Beta"}]
                ).status_code == 202
    assert send(path, "DELETE", headers=with_header(conn), json=[{"id": "a2"}]).status_code == 202
    full = send(path, headers=with_header(conn), json=[{"id": "a3", "company": "Gamma"}])
    assert full.status_code == 503 and full.headers["Retry-After"] == "300"
    assert "already holds 2 requests" in full.json()["error"]
    latest = send(f"/api/v1/connections/{conn['id']}", "GET").json()
    assert latest["latest_payload"] == [{"id": "a3", "company": "Gamma"}]  # still shown
    send(f"/api/v1/connections/{conn['id']}", "PATCH", json={"enabled": True})
    assert send(f"/api/v1/connections/{conn['id']}/replay", "POST").json()["replayed"] == 2
    live = {a.account_id for a in stored(db, Account, workspace) if a.archived_at is None}
    assert live == {"a1"}  # a2 created, then removed by the held DELETE


def test_a_held_request_the_mapping_cannot_read_stays_held(send, connection, db, workspace):
    conn = connection("account")
    path = f"/webhooks/{conn['id']}"
    assert send(path, headers=with_header(conn), json={"data": {"rows": [{"id": "a1", "name": "Acme"}]}}
                ).status_code == 202
    send(f"/api/v1/connections/{conn['id']}", "PATCH",
         json={"enabled": True, "mapping": {"wrapper": "rows", "id_field": "id"}})
    first = send(f"/api/v1/connections/{conn['id']}/replay", "POST").json()
    assert first["replayed"] == 0 and first["held"] == 1
    assert "wrapper path 'rows': not found" in first["requests"][0]["error"]
    send(f"/api/v1/connections/{conn['id']}", "PATCH",
         json={"mapping": {"wrapper": "data.rows", "id_field": "id"}})
    second = send(f"/api/v1/connections/{conn['id']}/replay", "POST").json()
    assert (second["replayed"], second["held"]) == (1, 0)
    assert [a.account_id for a in stored(db, Account, workspace)] == ["a1"]


# --- item 5: an event without a timestamp ----------------------------------------------------

def test_an_event_without_a_timestamp_is_an_event_received_now(send, db, workspace):
    before = datetime.now(timezone.utc)
    response = send("/hightouch/webhook", json=[{"event": "Signed In", "user_id": "u1"},
                                                {"event": "Report Run", "user_id": "u1",
                                                 "timestamp": TS}])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] == 2 and body["rejected"] == []
    (note,) = body["notes"]
    assert note.startswith("1 event without a timestamp: stored with the time received, ")
    events = {e.event: e for e in stored(db, Event, workspace)}
    received = _aware(events["Signed In"].timestamp)
    assert before - timedelta(seconds=1) <= received <= datetime.now(timezone.utc)
    assert _aware(events["Report Run"].timestamp) == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    forced = send("/hightouch/webhook", json=[{"event": "Signed In", "user_id": "u2"}],
                  params={"object": "event"})
    assert forced.status_code == 201 and forced.json()["notes"]


# --- item 6: form bodies and Census's Liquid batch template ----------------------------------

def test_a_form_urlencoded_row(send, connection, db, workspace):
    response = send("/hightouch/webhook", "PUT", data={"user_id": "u1", "email": "ada@acme.io",
                                                       "plan": "pro", "seats": "12"})
    assert response.status_code == 201, response.text
    (user,) = stored(db, User, workspace)
    assert (user.email, user.traits) == ("ada@acme.io", {"plan": "pro", "seats": "12"})
    conn = connection("account", mapping={"id_field": "Id", "name_field": "Company"},
                      enabled=True)
    form = {**with_header(conn), "Content-Type": "application/x-www-form-urlencoded"}
    hooked = send(f"/webhooks/{conn['id']}", headers=form,
                  data="Id=a1&Company=Acme+%26+Co&tag=x&tag=y")
    assert hooked.status_code == 201, hooked.text
    (account,) = stored(db, Account, workspace)
    assert (account.name, account.traits) == ("Acme & Co", {"tag": ["x", "y"]})


CENSUS_BATCH = """[
  {% for record in records %}
  {
    "user_id": "{{ record['user_id'] }}",
    "email": "{{ record['email'] }}",
    "account_id": "{{ record['account_id'] }}",
    "seats": {{ record['seats'] }}
  },
  {% endfor %}
]"""


def test_census_liquid_batch_template_with_its_trailing_comma(send, tenant, db, workspace):
    records = [{"user_id": f"u{i}", "email": f"user{i}@acme.io", "account_id": "a1",
                "seats": i} for i in range(3)]
    rendered = liquid.Template(CENSUS_BATCH).render(records=records)
    assert rendered.rstrip()[:-1].rstrip().endswith(",")  # the comma before the closing ]
    as_json = {**tenant.headers, "Content-Type": "application/json"}
    response = send("/hightouch/webhook", data=rendered.encode(), headers=as_json)
    assert response.status_code == 201, response.text
    assert sorted((u.user_id, u.traits["seats"]) for u in stored(db, User, workspace)) == \
        [("u0", 0), ("u1", 1), ("u2", 2)]
    text = '{"user_id": "u9", "email": "x@acme.io", "note": "a, ]"},'  # commas in text stay
    one = send("/hightouch/webhook", data=f"[{text}]", headers=as_json)
    assert one.status_code == 201
    assert stored(db, User, workspace, user_id="u9")[0].traits == {"note": "a, ]"}


@pytest.mark.parametrize("body, content_type", [
    ("<row><account_id>a1</account_id></row>", "application/xml"),
    ('[{"account_id": "a1",,}]', "application/json"),
    ("", "application/json"),
])
def test_other_bodies_are_400_saying_what_is_expected(send, tenant, body, content_type):
    response = send("/hightouch/webhook", data=body,
                    headers={**tenant.headers, "Content-Type": content_type})
    assert response.status_code == 400
    assert response.json()["error"].endswith(
        "expected a JSON array or object of rows, or application/x-www-form-urlencoded fields "
        "(one row)")


# --- item 7: HTTP Basic with the key as the password ----------------------------------------

@pytest.mark.parametrize("path, method, body", [
    ("/api/v1/accounts", "GET", None),
    ("/api/v1/accounts", "POST", [{"account_id": "a1", "name": "Acme"}]),
    ("/hightouch/webhook", "POST", [{"account_id": "a1", "name": "Acme"}]),
    ("/hightouch/rpc", "POST", {"jsonrpc": "2.0", "id": 1, "method": "list_objects",
                                "params": {}}),
    ("/census/rpc", "POST", {"jsonrpc": "2.0", "id": 1, "method": "test_connection",
                             "params": {}}),
    ("/v1/identify", "POST", {"userId": "u1", "traits": {"email": "ada@acme.io"}}),
    ("/api/v1/connections", "GET", None),
])
def test_basic_auth_with_the_key_as_password(send, tenant, path, method, body):
    ok = send(path, method, headers={}, json=body, auth=("census", tenant.key))
    assert ok.status_code in (200, 201), ok.text
    anyone = send(path, method, headers={}, json=body, auth=("", tenant.key))
    assert anyone.status_code in (200, 201), anyone.text
    wrong = send(path, method, headers={}, json=body, auth=("census", "cor_not-the-key"))
    assert wrong.status_code == 401


def test_basic_auth_on_a_connection_with_its_value_as_password(send, connection):
    conn = connection("account", mapping={"id_field": "id"}, enabled=True)
    value, row = conn["authorization_header"]["value"], [{"id": "a1", "name": "Acme"}]
    path = f"/webhooks/{conn['id']}"
    assert send(path, headers={}, json=row, auth=("hightouch", value)).status_code == 201
    assert send(path, headers={}, json=row, auth=("hightouch", "whk_wrong")).status_code == 401


def test_two_replays_at_once_write_each_held_request_once(send, connection, db, workspace):
    conn = connection("event")
    path = f"/webhooks/{conn['id']}"
    for n in range(6):
        message = {"type": "track", "event": "Report Run", "userId": "u1", "messageId": f"t-{n}"}
        assert send(path, headers=with_header(conn), json=message).status_code == 202
    send(f"/api/v1/connections/{conn['id']}", "PATCH", json={"enabled": True, "mapping": {
        "event_field": "event", "user_id_field": "userId", "event_id_field": "messageId"}})
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: send(f"/api/v1/connections/{conn['id']}/replay",
                                               "POST"), range(2)))
    assert [a.status_code for a in answers] == [200, 200]
    assert sum(a.json()["replayed"] for a in answers) >= 6  # a request may be written twice...
    events = stored(db, Event, workspace)
    assert sorted(e.event_id for e in events) == [f"t-{n}" for n in range(6)]  # ...stored once
    assert db.session.scalar(sa.select(sa.func.count()).select_from(HeldPayload)) == 0
