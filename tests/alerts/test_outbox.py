"""deliver_due against real receivers: signatures, Slack shape, email, retries, order, resend."""
from __future__ import annotations

import email
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from correlated.alerts import deliver_due
from correlated.alerts.destinations import rotate_secret
from correlated.alerts.models import Delivery, DeliveryAttempt
from correlated.alerts.outbox import resend, send_test

from .helpers import destination, entered, push, rule
from .receivers import Answer, HttpReceiver


def later(minutes: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(minutes=minutes)


def statuses(db) -> list[tuple[str, int]]:
    db.session.expire_all()
    return [(d.status, d.attempts) for d in db.session.scalars(
        sa.select(Delivery).order_by(Delivery.created_at))]


def attempts(db) -> list[tuple[str, int | None]]:
    return [(a.status, a.response_code) for a in db.session.scalars(
        sa.select(DeliveryAttempt).order_by(DeliveryAttempt.at, DeliveryAttempt.status))]


def test_webhook_is_signed_per_standard_webhooks(db, tenant, allow_private, receiver):
    hook = destination(db, tenant, "webhook", receiver.url)
    secret = hook.secret
    rule(db, tenant, hook, owner_dimension="owner_email")
    push(db, tenant, entered("acme"))
    assert deliver_due(db.session) == 1
    [got] = receiver.received
    body = Webhook(secret).verify(got.body, got.headers)  # the library, not our code
    assert body["type"] == "signal.entered" and body["data"]["account"]["id"] == "acme"
    assert set(body) == {"type", "timestamp", "data"}
    assert set(body["data"]) == {"signal", "account", "values", "url"}
    assert got.headers["webhook-id"].startswith("msg_")
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(got.body, got.headers)
    assert statuses(db) == [("delivered", 1)] and attempts(db) == [("delivered", 200)]


def test_rotation_signs_with_both_secrets_for_a_while(db, tenant, allow_private, receiver):
    hook = destination(db, tenant, "webhook", receiver.url)
    old = hook.secret
    new = rotate_secret(hook)
    db.session.commit()
    rule(db, tenant, hook, cooldown_days=0)
    push(db, tenant, entered("acme"))
    deliver_due(db.session)
    got = receiver.received[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(got.body, got.headers)
    Webhook(new).verify(got.body, got.headers)
    push(db, tenant, entered("globex"))
    deliver_due(db.session, now=later(25 * 60))  # the old secret's grace is over
    got = receiver.received[-1]
    Webhook(new).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(got.body, got.headers)


def test_slack_gets_block_kit(db, tenant, allow_private, slack_receiver):
    slack = destination(db, tenant, "slack", slack_receiver.url)
    rule(db, tenant, slack, owner_dimension="owner_email", cooldown_days=0)
    push(db, tenant, entered("acme", values={"active_users_7d": 5, "note": "<b>&"}))
    push(db, tenant, *[entered(f"a{i}") for i in range(25)])
    assert deliver_due(db.session) == 2
    assert statuses(db) == [("delivered", 1), ("delivered", 1)]  # the receiver checked the shape
    single, digest = (r.json() for r in slack_receiver.received)
    assert single["text"] == "Acme Inc entered Expansion"
    headline = single["blocks"][0]["text"]["text"]
    assert "<https://correlated.example/accounts/acme|Acme Inc>" in headline
    assert {"type": "mrkdwn", "text": "*note*\n&lt;b&gt;&amp;"} in single["blocks"][1]["fields"]
    assert "rep@acme.example" in single["blocks"][2]["elements"][0]["text"]
    assert digest["text"] == "25 accounts entered Expansion"
    assert digest["blocks"][1]["text"]["text"].count("\n") == 19  # the first 20
    assert "…and 5 more" in digest["blocks"][2]["elements"][0]["text"]


def test_email_goes_out_over_smtp_as_text_and_html(db, tenant, allow_private, smtp):
    mail = destination(db, tenant, "email", "cs@acme.example")
    rule(db, tenant, mail, owner_dimension="owner_email")
    push(db, tenant, entered("acme"))
    assert deliver_due(db.session) == 1
    [envelope] = smtp.messages
    assert envelope.rcpt_tos == ["cs@acme.example"]
    message = email.message_from_bytes(envelope.content)
    assert message["Subject"] == "Acme Inc entered Expansion"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in message.walk()
             if not p.is_multipart()}
    assert "active_users_7d: 5" in parts["text/plain"]
    assert 'href="https://correlated.example/accounts/acme"' in parts["text/html"]
    assert statuses(db) == [("delivered", 1)]


def test_5xx_is_retried_with_backoff_then_delivered(db, tenant, allow_private, receiver):
    receiver.script = [Answer(500, body=b"x" * 5000), Answer(503)]
    rule(db, tenant, destination(db, tenant, "webhook", receiver.url))
    push(db, tenant, entered("acme"))
    assert deliver_due(db.session) == 1
    assert deliver_due(db.session) == 0  # not due again yet
    [delivery] = db.session.scalars(sa.select(Delivery)).all()
    wait = (delivery.next_attempt_at.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc))
    assert 4 <= wait.total_seconds() <= 11  # 10 s, with jitter
    deliver_due(db.session, now=later(1))
    deliver_due(db.session, now=later(2))
    assert statuses(db) == [("delivered", 3)]
    assert attempts(db) == [("retry", 500), ("retry", 503), ("delivered", 200)]
    [first] = db.session.scalars(sa.select(DeliveryAttempt).where(
        DeliveryAttempt.response_code == 500)).all()
    assert len(first.response_snippet) == 1024  # read bounded
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert ids == {delivery.id}  # the same webhook-id on every retry


def test_429_waits_for_retry_after(db, tenant, allow_private, slack_receiver):
    slack_receiver.script = [Answer(429, {"Retry-After": "120"})]
    rule(db, tenant, destination(db, tenant, "slack", slack_receiver.url))
    push(db, tenant, entered("acme"))
    deliver_due(db.session)
    assert deliver_due(db.session, now=later(1.9)) == 0
    assert deliver_due(db.session, now=later(2.1)) == 1
    assert statuses(db) == [("delivered", 2)]
    assert attempts(db) == [("retry", 429), ("delivered", 200)]


def test_4xx_fails_at_once_and_can_be_resent(db, tenant, allow_private, receiver):
    receiver.script = [Answer(400, body=b"bad payload")]
    rule(db, tenant, destination(db, tenant, "webhook", receiver.url))
    push(db, tenant, entered("acme"))
    deliver_due(db.session)
    assert statuses(db) == [("failed", 1)]
    assert deliver_due(db.session, now=later(60)) == 0
    [delivery] = db.session.scalars(sa.select(Delivery)).all()
    resend(db.session, tenant.id, delivery.id)
    db.session.commit()
    assert deliver_due(db.session) == 1
    assert statuses(db) == [("delivered", 2)]
    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.id] * 2


def test_gives_up_after_24_hours(db, tenant, allow_private, receiver):
    receiver.default = Answer(502)
    rule(db, tenant, destination(db, tenant, "webhook", receiver.url))
    push(db, tenant, entered("acme"))
    for hours in (0, 6, 12, 18, 23.9):
        deliver_due(db.session, now=later(hours * 60))
    assert statuses(db) == [("pending", 5)]
    deliver_due(db.session, now=later(23.99 * 60))
    assert statuses(db)[0][0] == "failed"
    last = db.session.scalars(sa.select(DeliveryAttempt)
                              .order_by(DeliveryAttempt.at.desc())).first()
    assert last.error == "HTTP 502; gave up after 24 h of retries"


def test_receiver_down_then_up_gets_everything_once_in_order(db, tenant, allow_private):
    down = HttpReceiver()  # not started: connections are refused
    hook = destination(db, tenant, "webhook", down.url)
    rule(db, tenant, hook, on="both", cooldown_days=0)
    for round_ in range(3):  # each account enters, exits and enters again while it is down
        push(db, tenant, *[entered(f"a{i}", "exited" if round_ == 1 else "entered")
                           for i in range(5)])
        deliver_due(db.session, now=later(round_))
    minutes = 3
    for _ in range(10):  # ten minutes of retries against the closed port
        minutes += 1
        deliver_due(db.session, now=later(minutes))
    assert all(status == "pending" for status, _ in statuses(db))
    down.start()
    try:
        while deliver_due(db.session, now=later(minutes + 60)):
            minutes += 60
        ids = [r.headers["webhook-id"] for r in down.received]
        assert len(ids) == len(set(ids)) == 15  # exactly once per webhook-id
        for i in range(5):
            kinds = [r.json()["type"] for r in down.received
                     if r.json()["data"]["account"]["id"] == f"a{i}"]
            assert kinds == ["signal.entered", "signal.exited", "signal.entered"]
    finally:
        down.stop()
    assert {s for s, _ in statuses(db)} == {"delivered"}


def test_send_test_reports_at_once(db, tenant, allow_private, receiver):
    hook = destination(db, tenant, "webhook", receiver.url)
    delivery = send_test(db.session, hook)
    assert delivery.status == "delivered" and receiver.received[0].json()["type"] == "test"
    Webhook(hook.secret).verify(receiver.received[0].body, receiver.received[0].headers)
    receiver.default = Answer(500)
    assert send_test(db.session, hook).status == "failed"  # a test is not retried


def test_synced_markup_and_line_breaks_reach_every_kind_as_text(db, tenant, allow_private, smtp,
                                                                slack_receiver):
    for dest in (destination(db, tenant, "email", "cs@acme.example"),
                 destination(db, tenant, "slack", slack_receiver.url)):
        rule(db, tenant, dest)
    transition = entered("acme")
    push(db, tenant, type(transition)(**{**transition.__dict__,
                                         "entity_name": "Acme\r\nBcc: x@evil.example <b>"}))
    assert deliver_due(db.session) == 2
    assert statuses(db) == [("delivered", 1), ("delivered", 1)]
    message = email.message_from_bytes(smtp.messages[0].content)
    assert message["Subject"] == "Acme Bcc: x@evil.example <b> entered Expansion"
    assert message["Bcc"] is None and smtp.messages[0].rcpt_tos == ["cs@acme.example"]
    html = [p for p in message.walk() if p.get_content_type() == "text/html"][0]
    assert "&lt;b&gt;" in html.get_payload(decode=True).decode()
    assert "&lt;b&gt;" in slack_receiver.received[0].json()["blocks"][0]["text"]["text"]
