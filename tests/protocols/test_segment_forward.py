"""/v1/webhook: Segment's Webhooks (Actions) and RudderStack's Webhook destinations, with the
bodies their documentation shows (one message, or an array when batching)."""
from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest

from correlated.ingest.writes import as_utc
from correlated.models import Account, Event, IngestLog, User
from tests.protocols.test_segment_http import basic, one, send, stored

# Segment's spec example of a track call as it leaves Segment (its common fields page), which
# the Webhooks (Actions) destination's default mapping sends whole.
SEGMENT_TRACK = {
    "anonymousId": "23adfd82-aa0f-45a7-a756-24f2a7a4c895",
    "context": {"library": {"name": "analytics.js", "version": "2.11.1"},
                "page": {"path": "/academy/", "url": "https://segment.com/academy/"},
                "userAgent": "Mozilla/5.0", "ip": "108.0.78.21"},
    "event": "Course Clicked",
    "integrations": {},
    "messageId": "ajs-f8ca1e4de5024d9430b3928bd8ac6b96",
    "properties": {"title": "Intro to Analytics"},
    "receivedAt": "2015-12-12T19:11:01.266Z",
    "sentAt": "2015-12-12T19:11:01.169Z",
    "timestamp": "2015-12-12T19:11:01.249Z",
    "type": "track",
    "userId": "AiUGstSDIg",
    "originalTimestamp": "2015-12-12T19:11:01.152Z",
}

# RudderStack's Webhook destination sends the event as its data plane holds it.
RUDDER_IDENTIFY = {
    "anonymousId": "8d872292709c6fbe", "channel": "web", "type": "identify",
    "context": {"traits": {"email": "alex@example.com", "name": "Alex Keener"},
                "library": {"name": "RudderLabs JavaScript SDK", "version": "2.9.1"}},
    "messageId": "2116ef8c-efc3-4ca4-851b-02ee60dad6ff", "userId": "AiUGstSDIg",
    "originalTimestamp": "2020-01-24T06:29:02.364Z", "receivedAt": "2020-01-24T06:29:02.403Z",
    "request_ip": "[::1]:53708", "rudderId": "8f8fa6b5-8e24-489c-8e22-61f23f2e364f",
    "sentAt": "2020-01-24T06:29:02.364Z", "timestamp": "2020-01-24T06:29:02.403Z",
}


def message(base: dict, **changes) -> dict:
    return {**copy.deepcopy(base), **changes}


def test_a_batch_of_every_type_is_read_message_by_message(db, client, tenant):
    batch = [
        RUDDER_IDENTIFY,
        {"type": "group", "userId": "AiUGstSDIg", "groupId": "acme", "traits": {"name": "Acme"},
         "messageId": "g1", "timestamp": "2020-01-24T06:29:03Z"},
        SEGMENT_TRACK,
        message(SEGMENT_TRACK, type="page", name="Pricing", messageId="p1"),
        message(SEGMENT_TRACK, type="screen", name="Home", messageId="s1"),
        {"type": "alias", "userId": "AiUGstSDIg", "previousId": "8d872292709c6fbe"},
        message(SEGMENT_TRACK, userId=None, messageId="anon"),
        message(SEGMENT_TRACK, type="delete", messageId="d1"),
        "not a message",
    ]
    response = send(client, tenant, "/v1/webhook", batch)
    assert response.status_code == 200
    answer = response.get_json()
    assert (answer["success"], answer["received"], answer["stored"]) == (True, 9, 6)
    assert [(r["index"], r["id"], r["reason"]) for r in answer["rejected"]] == [
        (6, "anon", "track: userId: required; a message with only an anonymousId is not stored "
                    "(correlated keeps activity of known users)"),
        (7, "d1", "type: expected one of identify, group, track, page, screen, alias; "
                  "got 'delete'"),
        (8, None, "object: expected a message object, got 'not a message'"),
    ]
    log = one(db, IngestLog)
    # Rows: a group is two (the account, the user's link), an alias none.
    assert (log.protocol, log.rows_received, log.rows_rejected) == ("segment", 9, 3)
    assert [r["reason"] for r in log.rejected_sample] == [r["reason"] for r in answer["rejected"]]

    user = one(db, User)
    assert (user.user_id, user.email, user.account_id) == ("AiUGstSDIg", "alex@example.com",
                                                           "acme")
    assert one(db, Account).name == "Acme"
    events = {e.event_id: e for e in stored(db, Event)}
    assert {k: e.event for k, e in events.items()} == {
        "ajs-f8ca1e4de5024d9430b3928bd8ac6b96": "Course Clicked", "p1": "Page Viewed: Pricing",
        "s1": "Screen Viewed: Home"}
    # Forwarded long after it happened: the sender's corrected timestamp, taken as it is.
    assert as_utc(events["p1"].timestamp) == datetime(2015, 12, 12, 19, 11, 1, 249000,
                                                      tzinfo=timezone.utc)


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_one_message_by_any_method_the_senders_offer(db, client, tenant, method):
    response = getattr(client, method)("/v1/webhook", json=SEGMENT_TRACK,
                                       headers={"Authorization": f"Bearer {tenant.key}"})
    assert response.status_code == 200
    assert response.get_json() == {"success": True, "received": 1, "stored": 1, "rejected": []}
    assert [e.event for e in stored(db, Event)] == ["Course Clicked"]


def test_a_batch_object_has_its_fields_inherited(db, client, tenant):
    body = {"context": {"groupId": "acme"}, "batch": [message(SEGMENT_TRACK, messageId="b1")]}
    assert send(client, tenant, "/v1/webhook", body).get_json()["stored"] == 1
    assert one(db, Event).account_id == "acme"


def test_nothing_stored_is_a_400_with_every_reason_and_logged(db, client, tenant):
    batch = [message(SEGMENT_TRACK, userId=None), message(RUDDER_IDENTIFY, type="purchase")]
    response = send(client, tenant, "/v1/webhook", batch)
    assert response.status_code == 400
    answer = response.get_json()
    assert (answer["success"], answer["code"], answer["stored"]) == (False, "invalid_request", 0)
    assert answer["message"].startswith("no message stored: track: userId: required")
    assert answer["message"].endswith("(and more; see rejected)")
    assert len(answer["rejected"]) == 2
    log = one(db, IngestLog)
    assert (log.rows_received, log.rows_rejected) == (2, 2)


def test_a_full_segment_batch_of_4000_messages(db, client, tenant):
    """Segment's Webhooks (Actions) batches 1,000 messages by default and up to 4,000."""
    batch = [message(SEGMENT_TRACK, messageId=f"m{i}") for i in range(4000)]
    response = send(client, tenant, "/v1/webhook", batch)
    assert response.status_code == 200 and response.get_json()["stored"] == 4000
    assert len(stored(db, Event)) == 4000


def test_a_forwarder_must_send_the_key_in_a_header(db, client, tenant):
    response = send(client, tenant, "/v1/webhook", message(SEGMENT_TRACK, writeKey=tenant.key),
                    headers={})
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.get_json()["message"]
    response = send(client, tenant, "/v1/webhook", SEGMENT_TRACK, headers=basic(tenant.key))
    assert response.status_code == 200


def test_segments_default_batch_over_real_http(db, live_server, tenant):
    """1,000 messages (the Webhooks (Actions) default batch) through a real HTTP server."""
    import requests

    batch = [message(SEGMENT_TRACK, messageId=f"h{i}") for i in range(999)] + [RUDDER_IDENTIFY]
    response = requests.put(f"{live_server}/v1/webhook", json=batch, timeout=60,
                            headers={"Authorization": f"Bearer {tenant.key}"})
    assert response.status_code == 200
    assert response.json() == {"success": True, "received": 1000, "stored": 1000, "rejected": []}
    assert len(stored(db, Event)) == 999 and len(stored(db, User)) == 1
