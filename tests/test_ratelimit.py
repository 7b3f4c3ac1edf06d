"""Per-key rate limits: 429 with Retry-After, separate budgets, Redis shared by workers, SDK retries."""
from __future__ import annotations

import os
import uuid

import re

import pytest
import redis
import segment.analytics as segment_sdk
import sqlalchemy as sa

from correlated import create_app
from correlated.extensions import db as _db
from correlated.models import Account, Event
from prometheus_client import REGISTRY

REDIS_URL = os.environ.get("CORRELATED_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LIMIT = "5 per minute"


def make_app(database_url: str, **config):
    config = {"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "test-secret",
              "TESTING": True, "RATE_LIMIT": LIMIT, **config}
    return create_app(config)


@pytest.fixture
def app(request, database_url):
    """The app with a tiny limit (a test may pass its own through indirect parametrization)."""
    app = make_app(database_url, RATE_LIMIT=getattr(request, "param", LIMIT))
    with app.app_context():
        yield app
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture
def workers(database_url):
    """Factory for test clients of separate apps on the test database (gunicorn's workers)."""
    apps = []

    def make(count: int, **config) -> list:
        apps.extend(make_app(database_url, **config) for _ in range(count))
        return [app.test_client() for app in apps[-count:]]

    yield make
    for made in apps:
        with made.app_context():
            _db.engine.dispose()


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own in the real Redis; its keys are deleted afterwards."""
    prefix = f"correlated-test-{uuid.uuid4().hex}"
    yield prefix
    server = redis.Redis.from_url(REDIS_URL)
    for key in server.scan_iter(f"*{prefix}*"):
        server.delete(key)
    server.close()


def account(n: int) -> dict:
    return {"account_id": f"a{n}", "name": f"Account {n}"}


def post_account(client, n: int, headers: dict | None = None, url: str = "/api/v1/accounts"):
    return client.post(url, json=account(n), headers=headers or {})


def stored_accounts(db) -> set[str]:
    db.session.rollback()
    return set(db.session.scalars(sa.select(Account.account_id)))


def test_a_key_over_its_budget_gets_429_with_retry_after_and_nothing_is_stored(
        client, db, tenant):
    answers = [post_account(client, n, tenant.headers) for n in range(5)]
    refused = post_account(client, 5, tenant.headers)

    assert [a.status_code for a in answers] == [200] * 5
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["4", "3", "2", "1", "0"]
    # Retry-After only on a 429: SDKs honour it on any retryable status (a 503 too)
    assert not any("Retry-After" in a.headers for a in answers)
    assert refused.status_code == 429
    assert refused.headers["Content-Type"].startswith("application/json")
    assert refused.get_json()["error"].startswith("too many requests: each API key may send "
                                                  "5 per minute")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert (refused.headers["X-RateLimit-Limit"], refused.headers["X-RateLimit-Remaining"]) \
        == ("5", "0")
    assert stored_accounts(db) == {f"a{n}" for n in range(5)}


def test_each_key_has_its_own_budget_shared_by_every_surface(client, tenant, other_tenant):
    for n in range(3):
        assert post_account(client, n, tenant.headers).status_code == 200
    rows = [{"account_id": "w1", "name": "Via webhook"}]
    for _ in range(2):  # the same key in ?token= spends the same budget
        response = client.post(f"/hightouch/webhook?token={tenant.key}", json=rows)
        assert response.status_code in (200, 201), response.get_json()

    assert client.post(f"/hightouch/webhook?token={tenant.key}", json=rows).status_code == 429
    assert post_account(client, 9, tenant.headers).status_code == 429
    assert client.post("/census/rpc", json={}, headers=tenant.headers).status_code == 429
    assert post_account(client, 9, other_tenant.headers).status_code == 200


def test_callers_without_a_key_are_limited_by_address(client, tenant):
    answers = [client.get("/api/v1/accounts").status_code for _ in range(6)]
    assert answers == [401] * 5 + [429]
    assert post_account(client, 1, tenant.headers).status_code == 200


def test_pages_for_people_and_health_checks_are_not_limited(client):
    assert {client.get("/healthz").status_code for _ in range(8)} == {200}
    assert {client.get("/login").status_code for _ in range(8)} == {200}


def test_sign_in_attempts_are_limited_per_address(client, tenant):
    """Password guessing meets the login limit (10 per minute); the right password then waits too."""
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    form = {"email": tenant.admin_email, "csrf_token": token}
    attempts = [client.post("/login", data={**form, "password": f"guess{i}"}).status_code
                for i in range(11)]
    assert 429 not in attempts[:10] and attempts[10] == 429
    right = client.post("/login?next=/accounts", data={**form, "password": tenant.admin_password})
    assert right.status_code == 429 and 1 <= int(right.headers["Retry-After"]) <= 60


def test_the_lockout_page_says_how_long_to_wait_and_leads_back_to_sign_in(client, tenant):
    """Issue #18, 18: a sentence with the wait, not "10 per 1 minute" and a dashboard button."""
    form = sign_in_form(client, tenant.admin_email)
    for i in range(10):
        client.post("/login", data={**form, "password": f"guess{i}"})
    page = client.post("/login?next=/accounts", data={**form, "password": "x"})
    html = page.get_data(as_text=True)
    assert page.status_code == 429 and "per 1 minute" not in html
    assert re.search(r"Wait \d+ seconds, then try again", html)
    assert 'href="/login?next=/accounts">Back to the sign-in form' in html
    assert "Back to the overview" not in html


def sign_in_form(client, email: str) -> dict[str, str]:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    return {"email": email, "csrf_token": token}


def test_failed_sign_ins_are_limited_per_email_from_any_address(workers, tenant):
    """Guessing one email's password from many addresses meets the per-account limit; another
    email, and signing in with the right password, never count towards it."""
    client, = workers(1, LOGIN_RATE_LIMIT="1000 per minute")
    form = sign_in_form(client, tenant.admin_email)
    for _ in range(3):  # successes do not count
        ok = client.post("/login", data={**form, "password": tenant.admin_password})
        assert ok.status_code == 302
        client.post("/logout", data={"csrf_token": form["csrf_token"]})
    answers = [client.post("/login", data={**form, "password": f"guess{n}"},
                           environ_base={"REMOTE_ADDR": f"10.0.0.{n}"}).status_code
               for n in range(22)]
    assert answers == [401] * 20 + [429] * 2
    right = client.post("/login", data={**form, "password": tenant.admin_password},
                        environ_base={"REMOTE_ADDR": "10.0.1.1"})
    assert right.status_code == 429
    other = client.post("/login", data={**form, "email": "someone@else.example",
                                        "password": "x"}, environ_base={"REMOTE_ADDR": "10.0.1.2"})
    assert other.status_code == 401


def test_without_redis_each_worker_enforces_its_share_of_the_sign_in_limit(workers, tenant):
    """Two workers with memory counters (no Redis): 10 attempts in all, where each counting
    10 alone let 20 through."""
    pair = workers(2, SERVER_WORKERS=2)
    forms = [sign_in_form(worker, tenant.admin_email) for worker in pair]
    answers = [pair[n % 2].post("/login", data={**forms[n % 2], "password": f"g{n}"}).status_code
               for n in range(14)]
    assert answers == [401] * 10 + [429] * 4


def test_sign_in_attempts_share_one_budget_across_workers_through_redis(workers, tenant,
                                                                        redis_prefix):
    """Two gunicorn workers on one Redis: 10 attempts per address in all, not 10 per worker."""
    pair = workers(2, RATELIMIT_STORAGE_URI=REDIS_URL, RATELIMIT_KEY_PREFIX=redis_prefix,
                   SERVER_WORKERS=2)
    forms = [sign_in_form(worker, tenant.admin_email) for worker in pair]
    answers = [pair[n % 2].post("/login", data={**forms[n % 2], "password": f"g{n}"}).status_code
               for n in range(14)]
    assert answers == [401] * 10 + [429] * 4


def test_redis_budget_is_shared_by_two_workers(workers, tenant, db, redis_prefix):
    """Two apps (two gunicorn workers) on one Redis: a key has one budget, not one per worker."""
    pair = workers(2, RATELIMIT_STORAGE_URI=REDIS_URL, RATELIMIT_KEY_PREFIX=redis_prefix)
    answers = [post_account(pair[n % 2], n, tenant.headers).status_code for n in range(7)]

    assert answers == [200] * 5 + [429] * 2
    assert stored_accounts(db) == {f"a{n}" for n in range(5)}
    keys = [k.decode() for k in redis.Redis.from_url(REDIS_URL).keys(f"*{redis_prefix}*")]
    assert keys and all(tenant.key not in k for k in keys)  # a hash of the key, never the key


def test_in_memory_budgets_are_per_worker(workers, tenant):
    """The control for the test above: without Redis each worker counts on its own."""
    pair = workers(2)
    answers = [post_account(pair[n % 2], n, tenant.headers).status_code for n in range(10)]
    assert answers == [200] * 10


def test_an_unreachable_redis_lets_requests_through(workers, tenant, db):
    """Losing a sync is worse than serving a request too many: no limit while Redis is down."""
    (worker,) = workers(1, RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    answers = [post_account(worker, n, tenant.headers).status_code for n in range(7)]
    assert answers == [200] * 7
    assert len(stored_accounts(db)) == 7


def rate_limited_segment_batches() -> float:
    labels = {"blueprint": "segment", "endpoint": "segment.receive", "method": "POST",
              "status": "429"}
    return REGISTRY.get_sample_value("correlated_http_requests_total", labels) or 0.0


@pytest.mark.parametrize("app", ["4 per second"], indirect=True)
def test_segment_sdk_hits_the_limit_and_still_delivers_every_event_once(
        app, live_server, tenant, db):
    refused_before = rate_limited_segment_batches()
    errors = []
    client = segment_sdk.Client(tenant.key, host=live_server, upload_size=3,
                                upload_interval=0.05, on_error=lambda e, b: errors.append(e))
    sent = [f"m-{n}" for n in range(45)]
    for message_id in sent:
        client.track(f"u{int(message_id[2:]) % 3}", "Report Exported", {"n": message_id},
                     message_id=message_id)
    client.flush()
    client.join()

    db.session.rollback()
    stored = db.session.scalars(sa.select(Event.event_id)).all()
    assert errors == []
    assert sorted(stored) == sorted(sent)  # every event, none twice
    assert rate_limited_segment_batches() - refused_before >= 1  # it did hit the limit


def test_a_browser_write_key_is_limited_per_visitor_not_per_site(client, db, tenant):
    """Every visitor of a site sends with its one public key: each address has its own budget."""
    import json

    from correlated.protocols.segment_browser import issue_browser_key

    key = issue_browser_key(db.session, tenant.workspace)
    tenant.workspace.allowed_origins = ["https://shop.example.com"]
    db.session.commit()

    def beacon(n: int, address: str) -> int:
        body = {"userId": "u1", "event": "E", "messageId": f"m{n}", "writeKey": key}
        return client.post("/v1/t", data=json.dumps(body), environ_base={"REMOTE_ADDR": address},
                           headers={"Content-Type": "text/plain",
                                    "Origin": "https://shop.example.com"}).status_code

    assert [beacon(n, "10.0.0.1") for n in range(6)] == [200] * 5 + [429]
    assert beacon(6, "10.0.0.2") == 200
    db.session.rollback()
    assert len(db.session.scalars(sa.select(Event)).all()) == 6
