"""Settings -> Destinations, the deliveries list, and the overview's failed-deliveries notice."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from correlated.alerts import deliver_due
from correlated.alerts.models import Delivery, Destination
from correlated.auth import add_member

from ..alerts.helpers import destination, entered, push, rule
from ..alerts.receivers import Answer, HttpReceiver
from ..pages import signed_in


@pytest.fixture
def receiver(app):
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = True
    found = HttpReceiver().start()
    yield found
    found.stop()


@pytest.fixture
def admin(app, tenant, fresh_g):
    return signed_in(app, tenant.admin_email, tenant.admin_password)


def test_admin_creates_tests_rotates_and_deletes(db, admin, receiver):
    client, token = admin
    page = client.post("/settings/destinations", data={
        "name": "Ops <hook>", "kind": "webhook", "target": receiver.url, "csrf_token": token})
    assert page.status_code == 201 and page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    secret = re.search(r'id="new-secret-value">(whsec_[^<]+)<', html).group(1)
    assert "Ops &lt;hook&gt;" in html
    listing = client.get("/settings/destinations").get_data(as_text=True)
    assert secret not in listing and secret[-4:] in listing  # masked once shown
    dest = db.session.scalars(sa.select(Destination)).one()

    sent = client.post(f"/settings/destinations/{dest.id}/test", data={"csrf_token": token},
                       follow_redirects=True)
    assert "Test message delivered." in sent.get_data(as_text=True)
    Webhook(secret).verify(receiver.received[0].body, receiver.received[0].headers)

    rotated = client.post(f"/settings/destinations/{dest.id}/rotate", data={"csrf_token": token})
    new = re.search(r'id="new-secret-value">(whsec_[^<]+)<',
                    rotated.get_data(as_text=True)).group(1)
    assert new != secret and "rotating" in rotated.get_data(as_text=True)

    receiver.default = Answer(500, body=b"boom")
    failed = client.post(f"/settings/destinations/{dest.id}/test", data={"csrf_token": token},
                         follow_redirects=True).get_data(as_text=True)
    assert "The test failed: HTTP 500." in failed

    gone = client.post(f"/settings/destinations/{dest.id}/delete", data={"csrf_token": token},
                       follow_redirects=True)
    assert "is deleted" in gone.get_data(as_text=True)
    db.session.rollback()
    assert db.session.scalars(sa.select(Destination)).all() == []


def test_a_refused_destination_says_why(app, admin):
    client, token = admin
    app.config["ALLOW_PRIVATE_DESTINATIONS"] = False
    page = client.post("/settings/destinations", data={
        "name": "meta", "kind": "webhook", "target": "http://169.254.169.254/",
        "csrf_token": token})
    assert page.status_code == 400
    assert "private or reserved address" in page.get_data(as_text=True)


def test_members_see_but_cannot_change(app, db, tenant, receiver, fresh_g):
    add_member(db.session, tenant.workspace, "viewer@acme.example", "viewer password 1")
    db.session.commit()
    client, token = signed_in(app, "viewer@acme.example", "viewer password 1")
    assert "Only workspace admins" in client.get("/settings/destinations").get_data(as_text=True)
    assert client.post("/settings/destinations", data={
        "name": "x", "kind": "webhook", "target": receiver.url, "csrf_token": token}
    ).status_code == 403


def test_failed_deliveries_show_on_the_overview_and_can_be_resent(db, tenant, admin, receiver):
    client, token = admin
    rule(db, tenant, destination(db, tenant, "webhook", receiver.url))
    receiver.script = [Answer(410, body=b"gone away")]
    push(db, tenant, entered("acme"))
    deliver_due(db.session)
    overview = client.get("/").get_data(as_text=True)
    assert "1 alert delivery failed" in overview
    listing = client.get("/deliveries?status=failed").get_data(as_text=True)
    assert "account:acme" in listing and "410" in listing and "HTTP 410" in listing
    delivery = db.session.scalars(sa.select(Delivery)).one()
    resent = client.post(f"/deliveries/{delivery.id}/resend", data={"csrf_token": token},
                         follow_redirects=True)
    assert "Queued again" in resent.get_data(as_text=True)
    deliver_due(db.session)
    assert "alert delivery failed" not in client.get("/").get_data(as_text=True)
    assert "delivered" in client.get("/deliveries").get_data(as_text=True)
