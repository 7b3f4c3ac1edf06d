"""enqueue: rules -> deliveries in the caller's transaction (on, cooldown, back-fill, digest)."""
from __future__ import annotations

import sqlalchemy as sa

from correlated.alerts import enqueue
from correlated.alerts.models import Delivery

from .helpers import SIGNAL, destination, entered, push, rule


def deliveries(db) -> list[Delivery]:
    return list(db.session.scalars(sa.select(Delivery).order_by(Delivery.created_at)))


def test_each_rule_gets_what_it_asked_for(db, tenant, allow_private, receiver):
    hook = destination(db, tenant, "webhook", receiver.url)
    rule(db, tenant, hook, on="enter", cooldown_days=0)
    exits = rule(db, tenant, hook, on="exit", cooldown_days=0)
    assert push(db, tenant, entered("acme"), entered("globex", "exited")) == 2
    found = {(d.type, d.entity_key, d.rule_id == exits.id) for d in deliveries(db)}
    assert found == {("signal.entered", "account:acme", False),
                     ("signal.exited", "account:globex", True)}
    other_signal = {"id": "sig_other", "name": "Other", "object": "account"}
    assert push(db, tenant, entered("initech"), signal=other_signal) == 0


def test_payload_names_the_entity_values_owner_and_link(db, tenant, allow_private, receiver):
    hook = destination(db, tenant, "webhook", receiver.url)
    rule(db, tenant, hook, owner_dimension="owner_email")
    push(db, tenant, entered("acme", values={"active_users_7d": 7}))
    [delivery] = deliveries(db)
    assert delivery.id.startswith("msg_") and delivery.status == "pending"
    assert delivery.payload["type"] == "signal.entered"
    data = delivery.payload["data"]
    assert data["signal"] == SIGNAL
    assert data["account"] == {"id": "acme", "name": "Acme Inc", "owner": "rep@acme.example",
                               "url": "https://correlated.example/accounts/acme"}
    assert data["values"] == {"active_users_7d": 7}
    assert data["url"] == "https://correlated.example/accounts/acme"


def test_backfill_never_alerts(db, tenant, allow_private, receiver):
    rule(db, tenant, destination(db, tenant, "webhook", receiver.url))
    assert push(db, tenant, *[entered(f"a{i}", backfill=True) for i in range(30)]) == 0
    assert deliveries(db) == []


def test_cooldown_is_per_entity_and_rule(db, tenant, allow_private, receiver):
    hook = destination(db, tenant, "webhook", receiver.url)
    rule(db, tenant, hook, on="both", cooldown_days=3)
    assert push(db, tenant, entered("acme"), entered("acme", "exited")) == 1  # one per entity
    assert push(db, tenant, entered("acme", "exited"), entered("globex")) == 1  # acme cools down
    db.session.execute(sa.update(Delivery).values(status="failed"))
    db.session.commit()
    assert push(db, tenant, entered("acme")) == 1  # a failed alert reached no one: no cooldown
    assert [d.entity_key for d in deliveries(db)] == ["account:acme", "account:globex",
                                                      "account:acme"]


def test_more_than_the_threshold_is_one_digest(db, tenant, allow_private, receiver):
    rule(db, tenant, destination(db, tenant, "webhook", receiver.url), cooldown_days=0,
         owner_dimension="owner_email")
    assert push(db, tenant, *[entered(f"a{i:04}") for i in range(1000)]) == 1
    [digest] = deliveries(db)
    data = digest.payload["data"]
    assert data["digest"]["count"] == 1000 and len(data["digest"]["accounts"]) == 20
    assert data["digest"]["accounts"][0] == {
        "id": "a0000", "name": "A0000 Inc", "owner": "rep@a0000.example",
        "url": "https://correlated.example/accounts/a0000"}
    assert data["url"] == "https://correlated.example/signals/sig_expansion"
    assert push(db, tenant, *[entered(f"b{i}") for i in range(10)]) == 10  # at the threshold


def test_enqueue_writes_in_the_callers_transaction(db, tenant, allow_private, receiver):
    rule(db, tenant, destination(db, tenant, "webhook", receiver.url))
    assert enqueue(db.session, tenant.id, SIGNAL, [entered("acme")]) == 1
    db.session.rollback()  # the evaluation failed: its deliveries go with it
    assert deliveries(db) == []
