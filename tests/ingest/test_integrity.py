"""Data integrity under attack (issue #13, items 1, 4, 5 and 8), on SQLite and PostgreSQL.

Each test reproduces what the outside attack did and failed before the fix: events left on the
account a user had just left, IDs beyond 64 bits rounded into one another, an update emptying a
required field, and a JSON-RPC batch carrying many times the per-request row limit.
"""
from __future__ import annotations

import itertools
import json
import threading
from datetime import datetime, timedelta, timezone

import requests
import sqlalchemy as sa

from correlated.analytics import summaries
from correlated.models import Account, AccountMetrics, DailyActivity, Event, User

WRITERS = 3
EVENTS_PER_BATCH = 50
MOVES = 20  # acc1, acc2, acc1, ... ending on acc2


def _post(session: requests.Session, url: str, rows: list, headers: dict) -> None:
    response = session.post(url, json=rows, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


def _events(writer: int, batch: int, now: datetime) -> list[dict]:
    """A batch for user `u` without an account_id: the account comes from the user."""
    return [{"event_id": f"w{writer}-b{batch}-{i}", "event": "login", "user_id": "u",
             "timestamp": (now - timedelta(days=i % 3, minutes=i)).isoformat()}
            for i in range(EVENTS_PER_BATCH)]


def test_events_follow_a_user_moved_while_they_arrive(live_server, db, tenant):
    """Item 1: three senders post events for `u` while a fourth moves `u` between accounts."""
    headers, now = tenant.headers, datetime.now(timezone.utc)
    _post(requests.Session(), f"{live_server}/api/v1/users",
          [{"user_id": "u", "email": "u@acme.io", "account_id": "acc1"}], headers)
    moving = threading.Event()
    moving.set()
    sent = [0] * WRITERS
    errors: list[BaseException] = []

    def send_events(writer: int) -> None:
        http = requests.Session()
        try:
            for batch in itertools.count():
                if not moving.is_set() and batch >= 3:
                    return
                _post(http, f"{live_server}/api/v1/events", _events(writer, batch, now), headers)
                sent[writer] += EVENTS_PER_BATCH
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def move_user() -> None:
        http = requests.Session()
        try:
            for move in range(MOVES):
                _post(http, f"{live_server}/api/v1/users",
                      [{"user_id": "u", "email": "u@acme.io", "account_id": f"acc{move % 2 + 1}"}],
                      headers)
        except BaseException as exc:
            errors.append(exc)
        finally:
            moving.clear()

    threads = [threading.Thread(target=send_events, args=(w,)) for w in range(WRITERS)]
    threads.append(threading.Thread(target=move_user))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    db.session.rollback()
    assert db.session.scalar(sa.select(User.account_id).where(User.user_id == "u")) == "acc2"
    by_account = dict(db.session.execute(sa.select(Event.account_id, sa.func.count())
                                         .group_by(Event.account_id)).all())
    assert by_account == {"acc2": sum(sent)}  # 0 events left on acc1
    rollup = dict(db.session.execute(sa.select(DailyActivity.account_id,
                                               sa.func.sum(DailyActivity.count))
                                     .group_by(DailyActivity.account_id)).all())
    assert rollup == {"acc2": sum(sent)}
    db.session.commit()
    summaries.ensure_fresh(db.session, tenant.id)
    metrics = dict(db.session.execute(sa.select(AccountMetrics.account_id,
                                                AccountMetrics.events_30d)).all())
    assert metrics.get("acc1", 0) == 0 and metrics["acc2"] == sum(sent)


# --- item 4: identifiers beyond 64 bits -----------------------------------------------------

BIG = "10000000000000000000000"  # + 1 digit: 100000000000000000000001 and ...002


def _raw(client, path: str, text: str, tenant) -> dict:
    response = client.post(path, data=text, content_type="application/json",
                           headers=tenant.headers)
    assert response.status_code in (200, 422), response.get_data(as_text=True)
    return response.get_json()


def test_accounts_beyond_64_bits_stay_two(client, db, tenant):
    body = f'[{{"account_id": {BIG}01, "name": "One"}}, {{"account_id": {BIG}02, "name": "Two"}}]'
    assert _raw(client, "/api/v1/accounts", body, tenant)["created"] == 2
    ids = set(db.session.scalars(sa.select(Account.account_id)))
    assert ids == {f"{BIG}01", f"{BIG}02"}  # every digit as sent


def test_event_ids_beyond_64_bits_are_not_duplicates(client, db, tenant):
    rows = ", ".join(f'{{"event_id": {BIG}0{n}, "event": "e", "user_id": -{BIG}0{n}, '
                     f'"timestamp": "2026-11-01T00:00:00Z"}}' for n in (1, 2))
    result = _raw(client, "/api/v1/events", f"[{rows}]", tenant)
    assert (result["created"], result["duplicates"]) == (2, 0)
    stored = set(db.session.execute(sa.select(Event.event_id, Event.user_id)))
    assert stored == {(f"{BIG}01", f"-{BIG}01"), (f"{BIG}02", f"-{BIG}02")}


def test_a_non_exact_number_is_no_id(client, db, tenant):
    """A fraction or an exponent past 2^53 was rounded to another ID; now the row is refused."""
    body = ('[{"account_id": 1e20, "name": "A"}, {"account_id": 12345678901234567.0, "name": "B"},'
            ' {"account_id": 42.0, "name": "C"}]')
    result = _raw(client, "/api/v1/accounts", body, tenant)
    assert result["created"] == 1
    assert [r["index"] for r in result["rejected"]] == [0, 1]
    assert all(r["reason"].startswith("account_id: the number") and "not exact" in r["reason"]
               for r in result["rejected"])
    assert list(db.session.scalars(sa.select(Account.account_id))) == ["42"]


def test_a_hightouch_id_beyond_64_bits_is_exact(client, db, tenant):
    config = {"object": "account", "mode": "upsert",
              "identifierMapping": {"from": "id", "to": "account_id"},
              "mappings": [{"from": "n", "to": "name"}]}
    text = ('{"jsonrpc": "2.0", "id": 1, "method": "add", "params": {"idColumn": "id", '
            f'"configuration": {_json(config)}, "rows": [{{"id": {BIG}01, "n": "One"}}, '
            f'{{"id": {BIG}02, "n": "Two"}}]}}}}')
    response = client.post("/hightouch/rpc", data=text, content_type="application/json",
                           headers=tenant.headers)
    assert response.get_json()["result"] == {"rejectedRows": []}
    assert set(db.session.scalars(sa.select(Account.account_id))) == {f"{BIG}01", f"{BIG}02"}


def _json(value) -> str:
    return json.dumps(value)


# --- item 5: update mode and required fields ------------------------------------------------

def test_an_update_cannot_empty_a_required_field(client, db, tenant):
    client.post("/api/v1/users", json=[{"user_id": "u1", "email": "u1@acme.io"},
                                       {"user_id": "u2", "email": "u2@acme.io"}],
                headers=tenant.headers)
    client.post("/api/v1/accounts", json=[{"account_id": "a1", "name": "Acme"}],
                headers=tenant.headers)
    users = client.post("/api/v1/users?mode=update", headers=tenant.headers, json=[
        {"user_id": "u1", "email": ""}, {"user_id": "u2", "email": None, "first_name": "Ann"},
        {"user_id": "u1", "first_name": "Bo"}]).get_json()
    accounts = client.post("/api/v1/accounts?mode=update", headers=tenant.headers,
                           json=[{"account_id": "a1", "name": ""}]).get_json()
    assert [(r["index"], r["reason"].split(";")[0]) for r in users["rejected"]] == [
        (0, "email: required"), (1, "email: required")]
    assert "an update cannot empty it" in users["rejected"][0]["reason"]
    assert users["updated"] == 1  # the valid row of the same request is kept
    assert [(r["index"], r["reason"].split(";")[0]) for r in accounts["rejected"]] == [
        (0, "name: required")]
    stored = dict(db.session.execute(sa.select(User.user_id, User.email)).all())
    assert stored == {"u1": "u1@acme.io", "u2": "u2@acme.io"}
    assert db.session.scalar(sa.select(Account.name)) == "Acme"
    assert db.session.scalar(sa.select(User.traits).where(User.user_id == "u1")) == {
        "first_name": "Bo"}


# --- item 8: the row limit holds per HTTP request -------------------------------------------

def test_a_json_rpc_batch_shares_one_row_limit(app, client, db, tenant, fresh_g):
    app.config["MAX_ROWS_PER_REQUEST"] = 10
    plan = {"object": {"object_api_name": "account", "label": "Account"}, "operation": "upsert",
            "schema": {"account_id": {"active_identifier": True,
                                      "field": {"field_api_name": "account_id"}}}}
    calls = [{"jsonrpc": "2.0", "id": n, "method": "sync_batch",
              "params": {"sync_plan": plan, "records": [{"account_id": f"a{n}-{i}", "name": "A"}
                                                        for i in range(4)]}}
             for n in range(8)]
    answers = client.post("/census/rpc", json=calls, headers=tenant.headers).get_json()
    assert ["result" in a for a in answers] == [True, True] + [False] * 6
    refused = answers[2]["error"]
    assert refused["code"] == -32602
    assert "records: 4 more would make 12 in one HTTP request" in refused["message"]
    assert "the limit is 10 rows per request" in refused["message"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Account)) == 8
    # the next HTTP request has its own budget
    again = client.post("/census/rpc", json=calls[2:4], headers=tenant.headers).get_json()
    assert ["result" in a for a in again] == [True, True]


def test_hightouch_calls_in_one_batch_share_it_too(app, client, db, tenant, fresh_g):
    app.config["MAX_ROWS_PER_REQUEST"] = 5
    config = {"object": "account", "mode": "upsert", "batchSize": 3,
              "identifierMapping": {"from": "id", "to": "account_id"},
              "mappings": [{"from": "n", "to": "name"}]}
    calls = [{"jsonrpc": "2.0", "id": n, "method": "add",
              "params": {"idColumn": "id", "configuration": config,
                         "rows": [{"id": f"a{n}-{i}", "n": "A"} for i in range(3)]}}
             for n in range(3)]
    answers = client.post("/hightouch/rpc", json=calls, headers=tenant.headers).get_json()
    assert ["result" in a for a in answers] == [True, False, False]
    assert "rows: 3 more would make 6 in one HTTP request" in answers[1]["error"]["message"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Account)) == 3
