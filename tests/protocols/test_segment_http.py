"""The Segment-spec API with hand-made requests: mapping rules, timestamps, errors and limits."""
from __future__ import annotations

import base64
import gzip
import json
from datetime import datetime, timedelta, timezone

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import sqlalchemy as sa

from correlated.ingest.engine import Options, ingest
from correlated.models import Account, Event, IngestLog, User
from correlated.protocols.segment import MAX_MESSAGE_BYTES
from correlated.ingest.writes import as_utc


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def send(client, tenant, path: str, body, headers=None, zipped: bool = False):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json",
               **(basic(tenant.key) if headers is None else headers)}
    if zipped:
        data, headers["Content-Encoding"] = gzip.compress(data), "gzip"
    return client.post(path, data=data, headers=headers)


def stored(db, model, **where):
    db.session.rollback()
    return db.session.scalars(sa.select(model).filter_by(**where)).all()


def one(db, model, **where):
    (row,) = stored(db, model, **where)
    return row


def reasons(db):
    return {(r["index"], r["reason"]) for log in stored(db, IngestLog)
            for r in log.rejected_sample}


def test_single_calls_with_basic_auth_or_write_key_in_the_body(db, client, tenant):
    response = send(client, tenant, "/v1/identify",
                    {"userId": "u1", "traits": {"email": "ada@acme.io"}})
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    response = send(client, tenant, "/v1/track",
                    {"userId": "u1", "event": "Signed In", "writeKey": tenant.key}, headers={})
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    assert one(db, User).email == "ada@acme.io" and one(db, Event).event == "Signed In"
    logs = stored(db, IngestLog)
    assert [(log.object, log.operation) for log in logs] == [("user", "upsert"),
                                                             ("event", "insert")]
    assert logs[1].payload["writeKey"] == "[redacted]"
    assert tenant.key not in json.dumps([log.payload for log in logs])


def test_a_batch_is_one_transaction_and_one_log_entry(db, client, tenant):
    batch = [
        {"type": "identify", "userId": "u1", "traits": {"email": "ada@acme.io"}},
        {"type": "group", "userId": "u1", "groupId": "acme", "traits": {"name": "Acme"}},
        {"type": "track", "userId": "u1", "event": "Ran Query", "messageId": "t1"},
        {"type": "track", "userId": "u1", "properties": {"rows": 3}, "messageId": "t2"},
        {"type": "track", "userId": "u1", "event": "Bad", "properties": [1, 2]},
        {"type": "alias", "userId": "u1", "previousId": "anon-1"},
        {"type": "identify", "userId": "u2", "traits": {"email": "not an email"}},
    ]
    response = send(client, tenant, "/v1/batch", {"batch": batch})
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    log = one(db, IngestLog)
    assert (log.protocol, log.object, log.operation) == ("segment", "mixed", "mixed")
    assert (log.rows_received, log.rows_accepted, log.rows_rejected) == (7, 4, 3)
    assert reasons(db) == {
        (3, "track: event: required"),
        (4, "track: properties: expected an object, got an array"),
        (6, "identify: email: not a valid email address: 'not an email'"),
    }
    assert one(db, User).account_id == "acme" and one(db, Account).name == "Acme"
    assert [(e.event_id, e.account_id) for e in stored(db, Event)] == [("t1", "acme")]


def test_batch_context_and_sent_at_apply_to_each_message(db, client, tenant):
    body = {
        "context": {"groupId": "acme", "ip": "10.0.0.1"},
        "integrations": {"All": False},
        "batch": [
            {"type": "identify", "userId": "u1", "traits": {"email": "ada@acme.io"}},
            {"type": "track", "userId": "u1", "event": "A", "messageId": "a"},
            {"type": "track", "userId": "u1", "event": "B", "messageId": "b",
             "context": {"groupId": "beta"}},
        ],
    }
    assert send(client, tenant, "/v1/batch", body).status_code == 200
    assert one(db, User).account_id == "acme"
    assert [(e.event_id, e.account_id) for e in stored(db, Event)] == [("a", "acme"),
                                                                       ("b", "beta")]


def test_timestamp_is_corrected_for_the_senders_clock_as_segment_does(db, client, tenant):
    skewed = datetime(2031, 1, 1, 12, tzinfo=timezone.utc)  # the sender's clock is far ahead
    body = {"sentAt": iso(skewed), "batch": [
        track("ten-seconds-ago", timestamp=iso(skewed - timedelta(seconds=10))),
        track("original", originalTimestamp=iso(skewed - timedelta(seconds=20))),
        track("untimed"),
        track("own-sent-at", timestamp="2024-05-01T10:00:00Z", sentAt="2024-05-01T10:00:30Z"),
        track("bad", timestamp="yesterday"),
    ]}
    before = datetime.now(timezone.utc)
    assert send(client, tenant, "/v1/batch", body).status_code == 200
    after = datetime.now(timezone.utc)
    times = {e.event_id: as_utc(e.timestamp) for e in stored(db, Event)}
    # Each is receivedAt (between `before` and `after`) minus how long before sentAt it happened.
    for event_id, lag in [("ten-seconds-ago", 10), ("original", 20), ("untimed", 0),
                          ("own-sent-at", 30)]:
        assert before <= times[event_id] + timedelta(seconds=lag) <= after, event_id
    assert "bad" not in times
    assert reasons(db) == {(4, "track: timestamp: expected ISO 8601 or epoch "
                               "seconds/milliseconds, got 'yesterday'")}
    # Without sentAt (a direct HTTP call importing history) the timestamp is taken as sent.
    send(client, tenant, "/v1/track", track("history", timestamp="2020-02-02T02:02:02Z"))
    assert as_utc(one(db, Event, event_id="history").timestamp) == \
        datetime(2020, 2, 2, 2, 2, 2, tzinfo=timezone.utc)


def track(message_id: str, **fields):
    return {"type": "track", "userId": "u1", "event": "E", "messageId": message_id, **fields}


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_identify_and_group_need_what_the_engine_needs_to_create(db, client, tenant):
    batch = [
        {"type": "identify", "userId": "ghost", "traits": {"plan": "pro"}},
        {"type": "group", "groupId": "nameless", "traits": {"plan": "pro"}},
        {"type": "group", "userId": "phantom", "groupId": "acme", "traits": {"name": "Acme"}},
        {"type": "group", "anonymousId": "anon-1", "groupId": "beta",
         "traits": {"name": "Beta", "createdAt": "2024-01-02T03:04:05Z"}},
        {"type": "group", "userId": "u1", "traits": {"name": "No Id"}},
    ]
    send(client, tenant, "/v1/batch", {"batch": batch})
    assert reasons(db) == {
        (0, "identify: no user with user_id ghost (a new user needs traits.email)"),
        (1, "group: no account with account_id nameless (a new account needs traits.name)"),
        (2, "group: no user with user_id phantom (identify the user with traits.email before "
            "grouping it)"),
        (4, "group: groupId: required"),
    }
    assert [(a.account_id, a.name) for a in stored(db, Account)] == [("acme", "Acme"),
                                                                     ("beta", "Beta")]
    assert one(db, Account, account_id="beta").traits == {"created_at": "2024-01-02T03:04:05+00:00"}
    assert stored(db, User) == []


def test_later_identify_and_group_calls_update_what_exists(db, client, tenant):
    send(client, tenant, "/v1/identify", {"userId": "u1", "traits": {
        "email": "ada@acme.io", "firstName": "Ada", "company": {"id": "acme", "name": "Acme"}}})
    send(client, tenant, "/v1/group", {"userId": "u1", "groupId": "acme",
                                       "traits": {"name": "Acme", "plan": "free"}})
    send(client, tenant, "/v1/identify", {"userId": "u1", "traits": {"lastName": "Lovelace"}})
    send(client, tenant, "/v1/group", {"groupId": "acme", "traits": {"plan": "pro"}})
    user = one(db, User)
    assert (user.email, user.account_id) == ("ada@acme.io", "acme")
    assert user.traits == {"first_name": "Ada", "last_name": "Lovelace",
                           "company": {"id": "acme", "name": "Acme"}}
    account = one(db, Account)
    assert (account.name, account.traits) == ("Acme", {"plan": "pro"})
    assert reasons(db) == set()


def test_traits_and_properties_named_like_aliases_stay_data(db, client, tenant):
    """Segment names the core fields in its envelope, so `action` or `external_id` are data."""
    send(client, tenant, "/v1/identify", {"userId": "u1", "traits": {
        "email": "ada@acme.io", "external_id": "sf-1", "company_id": "C-1", "user_email": "x"}})
    send(client, tenant, "/v1/track", {"userId": "u1", "event": "Clicked", "messageId": "m1",
                                       "properties": {"action": "save", "time": 2, "ts": "x",
                                                      "account_id": "acme"}})
    user = one(db, User)
    assert (user.user_id, user.account_id) == ("u1", None)
    assert user.traits == {"external_id": "sf-1", "company_id": "C-1", "user_email": "x"}
    event = one(db, Event)
    assert (event.event, event.account_id) == ("Clicked", "acme")  # a core name fills a gap
    assert event.properties == {"action": "save", "time": 2, "ts": "x"}


def test_the_engine_can_match_core_names_only(db, workspace):
    result = ingest(db.session, workspace, "user", "upsert",
                    [{"user_id": "u1", "email": "a@b.io", "external_id": "x"}],
                    Options(aliases=False))
    assert result.created == 1 and one(db, User).traits == {"external_id": "x"}
    result = ingest(db.session, workspace, "user", "upsert",
                    [{"user_id": "u1", "email": "a@b.io", "external_id": "x"}])
    assert [r.reason for r in result.rejected] == \
        ["external_id: maps to user_id, which user_id already gives"]


def test_gzip_bodies_are_accepted(db, client, tenant):
    body = {"batch": [track("z1"), track("z2")]}
    response = send(client, tenant, "/v1/batch", body, zipped=True)
    assert response.status_code == 200 and len(stored(db, Event)) == 2
    response = send(client, tenant, "/v1/batch", b"\x1f\x8b not gzip",
                    headers={**basic(tenant.key), "Content-Encoding": "gzip"})
    assert response.status_code == 400 and "gzip" in response.get_json()["message"]


def padded(size: int, **message) -> dict:
    """`message` padded with a property so its compact JSON is exactly `size` bytes."""
    message = {**message, "properties": {"pad": ""}}
    message["properties"]["pad"] = "x" * (size - len(json.dumps(message, separators=(",", ":"))))
    return message


@pytest.mark.parametrize("path, body, text", [
    ("/v1/track", b"{not json", "not valid JSON"),
    ("/v1/track", [1, 2], "expected a JSON object"),
    ("/v1/batch", {"batch": {"type": "track"}}, "batch: expected an array"),
    ("/v1/track", track("big", properties={"pad": "x" * MAX_MESSAGE_BYTES}),
     "may be at most 32,768 bytes"),
    ("/v1/batch", {"batch": [{"type": "alias"}] * 4001}, "too many messages: 4,001"),
    ("/v1/webhook", [{"type": "alias"}] * 4001, "too many messages: 4,001"),
    ("/v1/webhook", "track", "expected a message or an array of messages"),
], ids=["json", "array", "batch-shape", "message-32k", "messages", "forwarded-messages",
        "forwarded-string"])
def test_bad_requests_are_400_with_the_reason(db, client, tenant, path, body, text):
    response = send(client, tenant, path, body)
    payload = response.get_json()
    assert response.status_code == 400 and text in payload["message"]
    assert payload["success"] is False and payload["code"] == "invalid_request"
    assert stored(db, Event) == [] and stored(db, IngestLog) == []


def test_size_limits_are_inclusive(db, client, tenant):
    body = json.dumps(padded(MAX_MESSAGE_BYTES, **track("edge")), separators=(",", ":"))
    assert len(body) == MAX_MESSAGE_BYTES
    assert send(client, tenant, "/v1/track", body.encode()).status_code == 200
    # A batch is bounded by the body limit only: RudderStack's SDKs batch up to 4 MB.
    batch = {"batch": [padded(30_000, **track(str(i))) for i in range(40)]}
    assert len(json.dumps(batch)) > 1_000_000
    assert send(client, tenant, "/v1/batch", batch).status_code == 200
    assert len(stored(db, Event)) == 41


@pytest.mark.parametrize("headers, body", [
    ({}, {"userId": "u1", "event": "E"}),
    ({}, {"userId": "u1", "event": "E", "writeKey": 42}),
    ({}, {"userId": "u1", "event": "E", "writeKey": "cor_wrong"}),
    (basic("cor_wrong"), {"userId": "u1", "event": "E"}),
], ids=["none", "not-a-string", "wrong-in-body", "wrong-basic"])
def test_missing_or_wrong_keys_are_401(db, client, tenant, headers, body):
    response = send(client, tenant, "/v1/track", body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["code"] == "invalid_write_key"
    assert stored(db, Event) == [] and stored(db, IngestLog) == []


def test_a_key_writes_only_to_its_own_workspace(db, client, tenant, other_tenant):
    send(client, other_tenant, "/v1/track", track("theirs"))
    assert [(e.workspace_id, e.event_id) for e in stored(db, Event)] == \
        [(other_tenant.id, "theirs")]


def test_oversized_bodies_over_real_http_are_400(db, live_server, tenant):
    huge = b'{"batch": [' + b'"x",' * (1_100_000) + b'"x"]}'  # over the 4 MiB body limit
    response = requests.post(f"{live_server}/v1/batch", data=huge, headers=basic(tenant.key),
                             timeout=30)
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    bomb = gzip.compress(b" " * (5 * 1024 * 1024))  # small on the wire, 5 MiB inflated
    response = requests.post(f"{live_server}/v1/batch", data=bomb, timeout=30,
                             headers={**basic(tenant.key), "Content-Encoding": "gzip"})
    assert response.status_code == 400 and "decompressed" in response.json()["message"]


def test_other_methods_get_a_json_405(client):
    response = client.get("/v1/track")
    assert response.status_code == 405 and "error" in response.get_json()


def test_a_database_error_is_a_500_so_sdks_retry(db, client, tenant):
    statements = {
        "sqlite": ["CREATE TRIGGER segment_boom BEFORE INSERT ON events "
                   "WHEN NEW.event = 'segment-boom' BEGIN SELECT RAISE(ABORT, 'boom'); END"],
        "postgresql": [
            "CREATE OR REPLACE FUNCTION segment_boom() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN IF NEW.event = 'segment-boom' THEN RAISE EXCEPTION 'boom'; END IF; "
            "RETURN NEW; END $$",
            "CREATE TRIGGER segment_boom BEFORE INSERT ON events FOR EACH ROW "
            "EXECUTE FUNCTION segment_boom()"],
    }[db.engine.dialect.name]
    with db.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    try:
        body = {"batch": [{"type": "identify", "userId": "u1", "traits": {"email": "a@b.io"}},
                          {"type": "track", "userId": "u1", "event": "segment-boom"}]}
        response = send(client, tenant, "/v1/batch", body)
    finally:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER segment_boom" if db.engine.dialect.name == "sqlite"
                                 else "DROP TRIGGER segment_boom ON events")
    assert response.status_code == 500 and response.get_json()["code"] == "server_error"
    assert "boom" in response.get_json()["message"]
    assert stored(db, User) == [] and stored(db, Event) == []
    log = one(db, IngestLog)
    assert "boom" in log.error and log.rows_rejected == 2


def test_a_lone_surrogate_in_a_large_batch_is_a_rejected_message(db, client, tenant):
    """Valid JSON (`"\\ud800"`) that is not valid text: the size check must not trip over it."""
    batch = [padded(30_000, **track("big")), track("odd", properties={"note": "\ud800"}),
             padded(5_000, **track("more"))]  # over 32 KB in all: each message is measured
    response = send(client, tenant, "/v1/batch", {"batch": batch})
    assert response.status_code == 200
    assert sorted(e.event_id for e in stored(db, Event)) == ["big", "more"]
    assert reasons(db) == {(1, "track: note: contains invalid unicode (a lone surrogate)")}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["identify", "group", "track", "page", "screen", "alias"])},
    optional={key: json_values for key in ("userId", "anonymousId", "groupId", "event", "name",
                                           "traits", "properties", "context", "timestamp",
                                           "originalTimestamp", "sentAt", "messageId")})


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(messages, max_size=5), sent_at=json_values)
def test_any_message_content_is_stored_or_rejected_never_a_crash(db, client, tenant, batch,
                                                                 sent_at):
    response = send(client, tenant, "/v1/batch", {"batch": batch, "sentAt": sent_at})
    assert (response.status_code, response.get_json()) == (200, {"success": True})


def test_an_over_long_event_name_is_a_rejected_message_not_a_failed_batch(db, client, tenant):
    """PostgreSQL's events.event is VARCHAR(255): a longer name must not fail the whole batch."""
    batch = [track("long", event="x" * 256), track("fine", event="x" * 255)]
    assert send(client, tenant, "/v1/batch", {"batch": batch}).status_code == 200
    assert [e.event_id for e in stored(db, Event)] == ["fine"]
    assert reasons(db) == {(0, "track: event: longer than 255 characters")}


def test_items_that_are_no_message_are_refused_alone_and_the_batch_stored(db, client, tenant):
    """#14 item 10: Segment answers 200 for all but size and JSON errors, and the SDKs drop a
    400 with every message in it; so each bad item is refused on its own, with its reason."""
    batch = [track("a"), {"type": "purchase", "messageId": "p1"}, "track", None,
             padded(MAX_MESSAGE_BYTES + 1, **track("big")), track("b")]
    response = send(client, tenant, "/v1/batch", {"batch": batch})
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    assert sorted(e.event_id for e in stored(db, Event)) == ["a", "b"]
    log = one(db, IngestLog)
    assert (log.rows_received, log.rows_accepted, log.rows_rejected) == (6, 2, 4)
    assert [(r["index"], r["id"], r["reason"]) for r in log.rejected_sample] == [
        (1, "p1", "type: expected one of identify, group, track, page, screen, alias; "
                  "got 'purchase'"),
        (2, None, "object: expected a message object, got 'track'"),
        (3, None, "object: expected a message object, got None"),
        (4, "big", "message of 32,769 bytes; a message may be at most 32,768 bytes"),
    ]


def test_a_bare_array_at_batch_is_the_batch(db, client, tenant):
    response = send(client, tenant, "/v1/batch", [track("a"), track("b")])
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    assert sorted(e.event_id for e in stored(db, Event)) == ["a", "b"]


def test_a_message_of_another_type_than_its_path_is_refused_and_logged(db, client, tenant):
    """#14 item 11: an identify posted to /v1/track was a 200 that stored nothing."""
    identify = {"type": "identify", "userId": "u1", "messageId": "i1",
                "traits": {"email": "ada@acme.io"}}
    response = send(client, tenant, "/v1/track", identify)
    assert response.status_code == 400
    message = response.get_json()["message"]
    assert message == ("type: 'identify' sent to /v1/track; send each call to its own path, or "
                       "every message to /v1/webhook, which reads each message's type")
    assert stored(db, User) == []
    log = one(db, IngestLog)
    assert (log.rows_received, log.rows_rejected, log.error) == (1, 1, message)
    assert log.rejected_sample == [{"index": 0, "id": "i1", "reason": message}]
    # Its own path stores it; a message naming its own path's type is just that call.
    assert send(client, tenant, "/v1/identify", identify).status_code == 200
    assert send(client, tenant, "/v1/track", track("t1")).status_code == 200
    assert [u.email for u in stored(db, User)] == ["ada@acme.io"]
    assert [e.event_id for e in stored(db, Event)] == ["t1"]
