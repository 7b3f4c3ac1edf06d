"""No SSRF: private, loopback, link-local and metadata destinations are refused, when created
and again when sent (the address checked is the one connected to)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from correlated.alerts import deliver_due, network
from correlated.alerts.models import DeliveryAttempt

from .helpers import destination, entered, push, rule
from .receivers import Answer

REFUSED = ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.1.2.3/",
           "http://192.168.0.10/", "http://172.16.5.5/", "http://169.254.169.254/latest/meta-data",
           "http://[::1]/", "http://[fd00:ec2::254]/", "http://100.100.100.200/",
           "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "http://2130706433/"]


@pytest.mark.parametrize("url", REFUSED)
def test_private_addresses_are_refused_at_create(client, tenant, url):
    response = client.post("/api/v1/destinations", headers=tenant.headers,
                           json={"name": "x", "kind": "webhook", "url": url})
    assert response.status_code == 422, response.json
    assert "private or reserved address" in response.json["errors"]["url"]


@pytest.mark.parametrize("url,problem", [
    ("ftp://example.com/", "http:// or https://"), ("http:///path", "http:// or https://"),
    ("http://user:pw@example.com/", "user name or password"),
    ("http://nothing-here.invalid/", "does not resolve")])
def test_malformed_urls_are_refused(client, tenant, url, problem):
    response = client.post("/api/v1/destinations", headers=tenant.headers,
                           json={"name": "x", "kind": "webhook", "url": url})
    assert response.status_code == 422 and problem in response.json["errors"]["url"]


def test_public_addresses_pass_the_check():
    assert not network.is_blocked("93.184.215.14") and not network.is_blocked("2606:4700::1111")


def test_refused_again_at_send_time(app, db, tenant, allow_private, receiver):
    """Allowed when created; the setting is off by send time: nothing reaches the receiver."""
    rule(db, tenant, destination(db, tenant, "webhook", receiver.url))
    push(db, tenant, entered("acme"))
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = False
    deliver_due(db.session)
    assert receiver.received == []
    [attempt] = db.session.scalars(sa.select(DeliveryAttempt)).all()
    assert attempt.status == "failed" and "private or reserved" in attempt.error


def test_redirects_are_not_followed(db, tenant, allow_private, receiver):
    receiver.script = [Answer(302, {"Location": "http://169.254.169.254/"})]
    rule(db, tenant, destination(db, tenant, "webhook", receiver.url))
    push(db, tenant, entered("acme"))
    deliver_due(db.session)
    [attempt] = db.session.scalars(sa.select(DeliveryAttempt)).all()
    assert attempt.status == "failed" and "redirects are not followed" in attempt.error
    assert len(receiver.received) == 1


def test_a_slow_receiver_times_out_and_is_retried(app, db, tenant, allow_private, receiver):
    app.config["DELIVERY_TIMEOUT_SECONDS"] = 0.3
    receiver.script = [Answer(delay=1.5)]
    rule(db, tenant, destination(db, tenant, "webhook", receiver.url))
    push(db, tenant, entered("acme"))
    deliver_due(db.session)
    [attempt] = db.session.scalars(sa.select(DeliveryAttempt)).all()
    assert attempt.status == "retry" and attempt.error.startswith("timeout")
