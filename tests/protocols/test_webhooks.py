"""POST /hightouch/webhook over real HTTP: Hightouch-style batches, Miso's status codes."""
from __future__ import annotations

import logging
import time

import pytest
import requests
import sqlalchemy as sa

from correlated.models import Account, Event, IngestLog, User

TS = "2024-05-01T10:00:00Z"


@pytest.fixture
def hook(live_server, tenant):
    """POST (or DELETE) to the quick endpoint with the tenant's key."""

    def send(body, method="POST", params=None, headers=None, **kwargs):
        headers = tenant.headers if headers is None else headers
        return requests.request(method, f"{live_server}/hightouch/webhook", json=body,
                                params=params, headers=headers, timeout=30, **kwargs)

    return send


def stored(db, model, workspace, **where):
    db.session.rollback()  # a fresh snapshot: the server wrote from its own threads
    query = sa.select(model).where(model.workspace_id == workspace.id)
    return db.session.scalars(query.filter_by(**where)).all()


def last_log(db, workspace):
    db.session.rollback()  # a fresh snapshot: the server wrote from its own threads
    return db.session.scalars(sa.select(IngestLog).where(IngestLog.workspace_id == workspace.id)
                              .order_by(IngestLog.received_at.desc())).first()


def test_a_hightouch_array_of_1000_rows(hook, db, workspace):
    rows = [{"account_id": f"a{i:04}", "name": f"Company {i}", "plan": ["free", "pro"][i % 2],
             "employees": i} for i in range(1000)]
    started = time.perf_counter()
    response = hook(rows)
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.text
    assert response.json()["created"] == 1000 and response.json()["rejected"] == []
    accounts = stored(db, Account, workspace)
    assert len(accounts) == 1000
    a7 = next(a for a in accounts if a.account_id == "a0007")
    assert a7.name == "Company 7" and a7.traits == {"plan": "pro", "employees": 7}
    assert elapsed < 10, f"1,000 rows took {elapsed:.2f}s"
    log = last_log(db, workspace)
    assert (log.protocol, log.object, log.rows_received, log.rows_accepted) == \
        ("webhook", "account", 1000, 1000)


def test_a_mixed_batch_stores_good_rows_and_lists_bad_ones(hook, db, workspace):
    response = hook({"batch": [
        {"account_id": "a1", "name": "Acme"},
        {"user_id": "u1", "email": "ada@acme.io", "account_id": "a1"},
        {"user_id": "u2", "email": "not-an-email"},
        {"event": "Signed In", "user_id": "u1", "timestamp": TS},
        {"plan": "pro"},
        "a string",
        {"event_name": "Report Run", "user_id": "u1", "ts": 1714557600, "rows": 12},
    ]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["received"], body["accepted"], body["created"]) == (7, 4, 4)
    rejected = {r["index"]: r for r in body["rejected"]}
    assert sorted(rejected) == [2, 4, 5]
    assert rejected[2]["reason"] == "email: not a valid email address: 'not-an-email'"
    assert rejected[2]["id"] == "u2"
    assert rejected[4]["reason"].startswith("object: cannot tell what this row is")
    assert rejected[5]["reason"] == "row: expected a JSON object, got 'a string'"
    assert [u.user_id for u in stored(db, User, workspace)] == ["u1"]
    assert [a.account_id for a in stored(db, Account, workspace)] == ["a1"]
    events = sorted(stored(db, Event, workspace), key=lambda e: e.event)
    assert [(e.event, e.account_id, e.properties) for e in events] == \
        [("Report Run", "a1", {"rows": 12}), ("Signed In", "a1", {})]
    log = last_log(db, workspace)
    assert (log.object, log.rows_received, log.rows_accepted, log.rows_rejected) == \
        ("mixed", 7, 4, 3)
    assert [r["index"] for r in log.rejected_sample] == [2, 4, 5]


def test_object_parameter_forces_the_object(hook, db, workspace):
    response = hook([{"name": "Signed In", "user_id": "u1"}], params={"object": "events"})
    assert response.status_code == 422
    assert response.json()["rejected"][0]["reason"] == "event: required"
    response = hook([{"user_id": "u9", "account_id": "a9", "name": "Nine"}],
                    params={"object": "account"})
    assert response.status_code == 201
    assert stored(db, Account, workspace)[0].traits == {"user_id": "u9"}
    assert hook([{"account_id": "a1"}], params={"object": "product"}).status_code == 400


def test_double_underscores_nest(hook, db, workspace):
    response = hook([{"user_id": "u1", "email": "ada@acme.io",
                      "context__custom_context__user__phone": "1234567890",
                      "context__locale": "en"}])
    assert response.status_code == 201
    user = stored(db, User, workspace)[0]
    assert user.traits == {"context": {"custom_context": {"user": {"phone": "1234567890"}},
                                       "locale": "en"}}


def test_status_codes_for_created_updated_removed_and_unchanged(hook, db, workspace):
    account = {"account_id": "a1", "name": "Acme"}
    assert hook([account]).status_code == 201
    again = hook([dict(account, plan="pro")])
    assert again.status_code == 201 and again.json()["updated"] == 1
    event = {"event": "Signed In", "user_id": "u1", "timestamp": TS, "event_id": "e1"}
    assert hook([event]).status_code == 201
    retry = hook([event])
    assert retry.status_code == 204 and retry.content == b""
    assert len(stored(db, Event, workspace)) == 1
    removed = hook([{"account_id": "a1"}], method="DELETE")
    assert removed.status_code == 202 and removed.json()["removed"] == 1
    assert stored(db, Account, workspace)[0].archived_at is not None
    assert hook([{"account_id": "a1"}], method="DELETE").status_code == 204  # already gone


def test_rows_flagged_removed_are_removed(hook, db, workspace):
    hook([{"account_id": "a1", "name": "Acme"}, {"account_id": "a2", "name": "Beta"}])
    response = hook([{"account_id": "a1", "_removed": True}])
    assert response.status_code == 202
    live = [a.account_id for a in stored(db, Account, workspace) if a.archived_at is None]
    assert live == ["a2"]
    both = hook([{"account_id": "a2", "_removed": True}, {"account_id": "a3", "name": "Gamma"}])
    assert both.status_code == 201 and both.json()["removed"] == 1


def test_no_storable_row_is_422_with_each_reason(hook, db, workspace):
    response = hook([{"user_id": "u1"}, {"foo": 1}])
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "no row could be stored"
    assert [(r["index"], r["reason"][:14]) for r in body["rejected"]] == \
        [(0, "email: require"), (1, "object: cannot")]
    assert stored(db, User, workspace) == []
    assert last_log(db, workspace).rows_rejected == 2


def test_an_empty_batch_changes_nothing(hook):
    assert hook([]).status_code == 204


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer cor_wrong"},
                                     {"Authorization": "Basic !!!"}])
def test_a_bad_or_missing_key_is_401(hook, db, workspace, headers):
    response = hook([{"account_id": "a1", "name": "Acme"}], headers=headers)
    assert response.status_code == 401 and "error" in response.json()
    assert stored(db, Account, workspace) == []


def test_basic_auth_with_the_key_as_user_name(hook, tenant, db, workspace):
    response = hook([{"account_id": "a1", "name": "Acme"}], headers={}, auth=(tenant.key, ""))
    assert response.status_code == 201


def test_token_in_the_url_authenticates_and_is_never_logged(hook, tenant, db, workspace, caplog):
    caplog.set_level(logging.INFO)
    response = hook([{"account_id": "a1", "name": "Acme", "token": "row-secret"}], headers={},
                    params={"token": tenant.key})
    assert response.status_code == 201
    assert hook([{"account_id": "a2", "name": "B"}], headers={},
                params={"token": "cor_nope"}).status_code == 401
    lines = [r.getMessage() for r in caplog.records]
    assert any("/hightouch/webhook?token=[redacted]" in line for line in lines)
    assert not any(tenant.key in line for line in lines)
    assert tenant.key not in str(last_log(db, workspace).payload)
    assert last_log(db, workspace).payload[0]["token"] == "[redacted]"


def test_size_limits_are_413(hook, app, db, workspace):
    too_many = hook([{"account_id": f"a{i}", "name": "x"} for i in range(1001)])
    assert too_many.status_code == 413 and "1,000" in too_many.json()["error"]
    app.config["MAX_CONTENT_LENGTH"] = 2_000
    too_big = hook([{"account_id": "a1", "name": "x" * 5_000}])
    assert too_big.status_code == 413 and "error" in too_big.json()
    assert stored(db, Account, workspace) == []


def test_a_database_fault_is_500_and_writes_nothing(hook, db, workspace, boom_trigger):
    response = hook([{"account_id": "a1", "name": "Acme"},
                     {"event": "boom", "user_id": "u1", "timestamp": TS}])
    assert response.status_code == 500
    body = response.json()
    assert body["error"].startswith("the batch could not be stored")
    assert all("boom refused" in r["reason"] for r in body["rejected"])
    assert stored(db, Account, workspace) == []
    assert "boom refused" in last_log(db, workspace).error


@pytest.fixture
def boom_trigger(db):
    """A trigger refusing events named 'boom': a real database error, nothing mocked."""
    if db.engine.dialect.name == "sqlite":
        create = ["CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.event = 'boom' "
                  "BEGIN SELECT RAISE(ABORT, 'boom refused'); END"]
        drop = ["DROP TRIGGER IF EXISTS boom"]
    else:  # the PostgreSQL database outlives the test: replace, then drop
        create = ["CREATE OR REPLACE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ "
                  "BEGIN IF NEW.event = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF; "
                  "RETURN NEW; END $$",
                  "CREATE TRIGGER boom BEFORE INSERT ON events FOR EACH ROW "
                  "EXECUTE FUNCTION boom()"]
        drop = ["DROP TRIGGER IF EXISTS boom ON events"]
    with db.engine.begin() as conn:
        for statement in drop + create:
            conn.exec_driver_sql(statement)
    yield
    with db.engine.begin() as conn:
        for statement in drop:
            conn.exec_driver_sql(statement)


def test_another_workspace_key_writes_to_its_own_workspace(hook, other_tenant, db, workspace):
    response = hook([{"account_id": "a1", "name": "Globex"}], headers=other_tenant.headers)
    assert response.status_code == 201
    assert stored(db, Account, workspace) == []
    assert [a.name for a in stored(db, Account, other_tenant.workspace)] == ["Globex"]


def test_gunicorn_access_lines_lose_the_token_too(app, caplog):
    caplog.set_level(logging.INFO, logger="gunicorn.access")
    atoms = {"r": "POST /hightouch/webhook?object=user&token=cor_secret HTTP/1.1",
             "q": "token=cor_secret&object=user", "s": "201"}
    logging.getLogger("gunicorn.access").info('"%(r)s" %(s)s %(q)s', atoms)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "gunicorn.access"]
    assert line == ('"POST /hightouch/webhook?object=user&token=[redacted] HTTP/1.1" 201 '
                    'token=[redacted]&object=user')


def test_a_single_row_with_a_list_valued_data_column_is_one_row(hook, db, workspace):
    response = hook({"account_id": "a1", "name": "Acme", "data": [{"k": 1}]})
    assert response.status_code == 201
    assert stored(db, Account, workspace)[0].traits == {"data": [{"k": 1}]}
