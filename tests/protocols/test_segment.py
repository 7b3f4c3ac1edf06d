"""The Segment-spec API driven by the real Segment and RudderStack Python SDKs over real HTTP."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import rudderstack.analytics as rudder_sdk
import segment.analytics as segment_sdk
import sqlalchemy as sa
from rudderstack.analytics.request import APIError as RudderAPIError
from segment.analytics.request import APIError as SegmentAPIError

from correlated.models import Account, Event, IngestLog, User
from correlated.ingest.writes import as_utc

WHEN = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def sdk_client(live_server, tenant):
    """Factory for SDK clients pointed at the live server; their upload threads stop afterwards."""
    made = []

    def make(sdk: str, batched: bool = False, key: str | None = None, **options):
        cls = rudder_sdk.Client if sdk == "rudderstack" else segment_sdk.Client
        options.setdefault("sync_mode", not batched)
        if batched:
            options.setdefault("upload_interval", 0.2)  # how long the upload thread gathers
        client = cls(key or tenant.key, host=live_server, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        if client.consumers:
            client.join()


def stored(db, model, **where):
    db.session.rollback()  # end the read snapshot: the live server wrote in another thread
    query = sa.select(model).filter_by(**where)
    return db.session.scalars(query).all()


def totals(logs):
    """(received, accepted, rejected) rows over several ingest-log entries."""
    return tuple(sum(getattr(log, f"rows_{n}") for log in logs)
                 for n in ("received", "accepted", "rejected"))


def send_story(client, user="u1", ids=("m-1", "m-2")):
    """identify, group, track and page: the calls a product team makes for one user."""
    client.identify(user, {"email": "ada@acme.io", "firstName": "Ada", "role": "admin",
                           "external_id": "sf-001"}, message_id=f"{ids[0]}-identify")
    client.group(user, "acme", {"name": "Acme", "industry": "Software", "employees": 40,
                                "company_id": "C-9"}, message_id=f"{ids[0]}-group")
    client.track(user, "Report Exported", {"format": "csv", "action": "export", "time": 3.5},
                 timestamp=WHEN, message_id=ids[0])
    client.page(user, category="Docs", name="Pricing", properties={"path": "/pricing"},
                message_id=ids[1])


@pytest.mark.parametrize("sdk, options", [
    ("segment", {}),
    ("segment", {"gzip": True}),
    ("rudderstack", {}),  # gzip is the RudderStack SDK's default
], ids=["segment", "segment-gzip", "rudderstack-gzip"])
def test_sdk_batch_is_stored_and_a_resend_is_stored_once(db, tenant, sdk_client, sdk, options):
    client = sdk_client(sdk, batched=True, **options)
    send_story(client)
    client.flush()

    (user,) = stored(db, User)
    assert (user.user_id, user.email, user.account_id) == ("u1", "ada@acme.io", "acme")
    assert user.traits == {"first_name": "Ada", "role": "admin", "external_id": "sf-001"}
    (account,) = stored(db, Account)
    assert (account.account_id, account.name) == ("acme", "Acme")
    assert account.traits == {"industry": "Software", "employees": 40, "company_id": "C-9"}
    track, page = sorted(stored(db, Event), key=lambda e: e.event_id)
    assert (track.event_id, track.event, track.user_id, track.account_id) == \
        ("m-1", "Report Exported", "u1", "acme")
    assert track.properties == {"format": "csv", "action": "export", "time": 3.5}
    # The SDK's timestamp, corrected by (receivedAt - sentAt): a few milliseconds here.
    assert abs(as_utc(track.timestamp) - WHEN) < timedelta(seconds=5)
    assert (page.event_id, page.event) == ("m-2", "Page Viewed: Pricing")
    assert page.properties == {"path": "/pricing", "name": "Pricing", "category": "Docs"}
    assert abs(as_utc(page.timestamp) - datetime.now(timezone.utc)) < timedelta(minutes=1)

    # The upload thread decides how the calls are split into requests; one entry per request.
    logs = stored(db, IngestLog)
    assert totals(logs) == (5, 5, 0)  # the group is two rows: the account and the user's link
    assert sum(len(log.payload["batch"]) for log in logs) == 4
    secret = "[redacted]" if sdk == "segment" else None  # RudderStack sends it only as Basic auth
    assert {log.protocol for log in logs} == {"segment"}
    assert {log.payload.get("writeKey") for log in logs} == {secret}

    send_story(client)
    client.flush()
    assert len(stored(db, Event)) == 2 and len(stored(db, User)) == 1
    assert totals(stored(db, IngestLog)) == (10, 10, 0)  # accepted again, stored once


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_a_message_without_user_id_is_rejected_and_the_others_stored(db, tenant, sdk_client,
                                                                     sdk):
    client = sdk_client(sdk, batched=True)
    client.track("u1", "Signed In", message_id="ok-1")
    client.track(anonymous_id="anon-7", event="Viewed Pricing", message_id="anon-1")
    client.identify(anonymous_id="anon-7", traits={"email": "who@acme.io"}, message_id="anon-2")
    client.flush()

    assert [e.event_id for e in stored(db, Event)] == ["ok-1"]
    assert stored(db, User) == []
    logs = stored(db, IngestLog)
    assert totals(logs) == (3, 1, 2)
    reasons = {r["id"]: r["reason"] for log in logs for r in log.rejected_sample}
    assert reasons == {
        "anon-1": "track: userId: required; a message with only an anonymousId is not stored "
                  "(correlated keeps activity of known users)",
        "anon-2": "identify: userId: required; a message with only an anonymousId is not stored "
                  "(correlated keeps activity of known users)",
    }


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_sync_mode_sends_each_call_on_its_own(db, tenant, sdk_client, sdk):
    client = sdk_client(sdk)
    client.identify("u2", {"email": "bo@globex.io"})
    client.screen("u2", name="Home", properties={"tab": "feed"}, message_id="s-1")
    client.alias(previous_id="anon-9", user_id="u2")

    assert [u.email for u in stored(db, User)] == ["bo@globex.io"]
    (screen,) = stored(db, Event)
    assert (screen.event, screen.properties) == ("Screen Viewed: Home",
                                                 {"tab": "feed", "name": "Home"})
    logs = stored(db, IngestLog)
    assert len(logs) == 3 and all(log.protocol == "segment" for log in logs)
    (alias,) = [log for log in logs if log.rows_received == 0]  # accepted, kept, nothing stored
    assert alias.payload["batch"][0]["previousId"] == "anon-9"


@pytest.mark.parametrize("sdk, error", [("segment", SegmentAPIError),
                                        ("rudderstack", RudderAPIError)])
def test_a_wrong_key_is_refused_with_401(db, tenant, sdk_client, sdk, error):
    client = sdk_client(sdk, key="cor_not-a-real-key")
    with pytest.raises(error) as raised:
        client.track("u1", "Signed In")
    assert raised.value.status == 401 and raised.value.code == "invalid_write_key"
    assert stored(db, Event) == [] and stored(db, IngestLog) == []


def test_a_rudderstack_batch_with_a_message_over_32_kb_keeps_the_others(db, tenant, sdk_client):
    """#14 item 10: RudderStack's SDK sends messages up to 4 MB in batches up to 4 MB; one over
    Segment's 32 KB was a 400 for the whole batch, which the SDK drops. Now it is refused alone."""
    errors = []
    client = sdk_client("rudderstack", batched=True, upload_interval=2,
                        on_error=lambda error, batch: errors.append(error))
    client.track("u1", "Small", message_id="small-1")
    client.track("u1", "Huge", {"blob": "x" * 40_000}, message_id="huge")
    for i in range(30):  # ~600 KB in all: over Segment's 500 KB, within RudderStack's 4 MB
        client.track("u1", "Rich", {"blob": "y" * 20_000}, message_id=f"rich-{i}")
    client.flush()

    assert errors == []
    assert len(stored(db, Event)) == 31 and "huge" not in {e.event_id for e in stored(db, Event)}
    logs = stored(db, IngestLog)
    assert totals(logs) == (32, 31, 1)
    ((reason,),) = [[r for r in log.rejected_sample] for log in logs if log.rows_rejected]
    assert reason["id"] == "huge" and reason["reason"].startswith("message of 40,")
    assert reason["reason"].endswith("bytes; a message may be at most 32,768 bytes")


def test_a_segment_batch_of_more_than_1000_messages_is_stored(db, tenant, sdk_client):
    """Segment bounds a batch by its 500 KB only: an SDK with a large upload_size sends more
    than CORRELATED_MAX_ROWS messages at once, which was a 400 the SDK drops."""
    errors = []
    client = sdk_client("segment", batched=True, upload_size=2000, upload_interval=3,
                        on_error=lambda error, batch: errors.append(error))
    for i in range(1200):
        client.track("u1", "Tick", message_id=f"tick-{i}")
    client.flush()

    assert errors == []
    assert len(stored(db, Event)) == 1200
    logs = stored(db, IngestLog)
    assert totals(logs) == (1200, 1200, 0) and max(log.rows_received for log in logs) > 1000
