"""A request's rows and its ingest-log entry are one transaction, whatever the protocol.

A trigger makes the database refuse the log entry of a request that succeeded: if the rows were
committed on their own (as webhooks and Segment once did), they would be stored; they must not
be. The entry that says why the request failed is allowed, so the log still explains it.
"""
from __future__ import annotations

import base64

import pytest
import sqlalchemy as sa

from correlated.models import Account, Event, IngestLog, User

from ..rpc_client import run_ddl

REFUSE_LOG = {
    "sqlite": ["CREATE TRIGGER refuse_log BEFORE INSERT ON ingest_log WHEN NEW.error IS NULL "
               "BEGIN SELECT RAISE(ABORT, 'log entry refused by trigger'); END"],
    "postgresql": [
        "CREATE FUNCTION refuse_log() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.error IS NULL THEN RAISE EXCEPTION 'log entry refused by trigger'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse_log BEFORE INSERT ON ingest_log FOR EACH ROW "
        "EXECUTE FUNCTION refuse_log()"],
}
DROP = {"sqlite": ["DROP TRIGGER IF EXISTS refuse_log"],
        "postgresql": ["DROP TRIGGER IF EXISTS refuse_log ON ingest_log",
                       "DROP FUNCTION IF EXISTS refuse_log()"]}
USERS = {"object": "user", "mode": "upsert",
         "identifierMapping": {"from": "uid", "to": "user_id"},
         "mappings": [{"from": "mail", "to": "email"}]}


@pytest.fixture
def log_refused(db):
    dialect = db.engine.dialect.name
    run_ddl(db, REFUSE_LOG[dialect])
    yield
    run_ddl(db, DROP[dialect])


def stored(db, *models) -> int:
    db.session.rollback()
    return sum(db.session.scalar(sa.select(sa.func.count()).select_from(m)) for m in models)


def only_log_entry(db) -> IngestLog:
    (entry,) = db.session.scalars(sa.select(IngestLog)).all()
    return entry


def test_a_hightouch_add(client, db, tenant, log_refused):
    response = client.post("/hightouch/rpc", headers=tenant.headers, json={
        "jsonrpc": "2.0", "id": 1, "method": "add", "params": {
            "idColumn": "uid", "configuration": USERS,
            "rows": [{"uid": f"u{i}", "mail": f"u{i}@acme.io"} for i in range(3)]}})
    assert response.get_json()["error"]["code"] == -32603
    assert stored(db, User) == 0
    entry = only_log_entry(db)
    assert "log entry refused" in entry.error and entry.rows_rejected == 3


def test_a_webhook_batch(client, db, tenant, log_refused):
    response = client.post("/hightouch/webhook", headers=tenant.headers, json=[
        {"account_id": "a1", "name": "Acme"}, {"user_id": "u1", "email": "ada@acme.io"},
        {"event": "Signed In", "user_id": "u1", "timestamp": "2026-05-01T10:00:00Z"}])
    assert response.status_code == 500
    assert stored(db, Account, User, Event) == 0
    entry = only_log_entry(db)
    assert "log entry refused" in entry.error and entry.rows_received == 3


def test_a_segment_batch(client, db, tenant, log_refused):
    basic = base64.b64encode(f"{tenant.key}:".encode()).decode()
    response = client.post("/v1/batch", headers={"Authorization": f"Basic {basic}"}, json={
        "batch": [{"type": "identify", "userId": "u1", "traits": {"email": "ada@acme.io"}},
                  {"type": "group", "userId": "u1", "groupId": "acme",
                   "traits": {"name": "Acme"}},
                  {"type": "track", "userId": "u1", "event": "Signed In", "messageId": "m1"}]})
    assert response.status_code == 500
    assert stored(db, Account, User, Event) == 0
    entry = only_log_entry(db)
    assert "log entry refused" in entry.error and entry.rows_received == 4


def test_without_the_trigger_the_same_requests_store_their_rows(client, db, tenant):
    """The control: the requests above are good ones."""
    client.post("/hightouch/webhook", headers=tenant.headers, json=[
        {"account_id": "a1", "name": "Acme"}, {"user_id": "u1", "email": "ada@acme.io"}])
    assert stored(db, Account, User) == 2 and only_log_entry(db).error is None
