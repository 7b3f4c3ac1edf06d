"""The REST API over real HTTP (requests against a live server), on SQLite and PostgreSQL."""
from __future__ import annotations

import base64
import csv
import gzip
import io
from datetime import datetime, timezone

import orjson
import pytest
import requests
import sqlalchemy as sa

from correlated.auth import revoke_keys
from correlated.ingest.engine import ingest
from correlated.models import Account, DailyActivity, Event, Field, IngestLog, User


class Api:
    """A caller with one workspace's key."""

    def __init__(self, base: str, key: str | None):
        self.base = f"{base}/api/v1"
        self.http = requests.Session()
        if key:
            self.http.headers["Authorization"] = f"Bearer {key}"

    def post(self, path: str, body=None, **kwargs) -> requests.Response:
        if body is not None:
            kwargs["data"] = orjson.dumps(body)
            kwargs.setdefault("headers", {})["Content-Type"] = "application/json"
        return self.http.post(self.base + path, **kwargs)

    def get(self, path: str, **params) -> requests.Response:
        return self.http.get(self.base + path, params=params)

    def delete(self, path: str) -> requests.Response:
        return self.http.delete(self.base + path)


@pytest.fixture
def api(live_server, tenant) -> Api:
    return Api(live_server, tenant.key)


def stored(db, model, workspace, **where):
    """Rows as committed by the server (a fresh transaction, so nothing stale)."""
    db.session.rollback()
    query = sa.select(model).where(model.workspace_id == workspace.id)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return db.session.scalars(query).all()


def error_of(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()["error"]


# --- writes ---------------------------------------------------------------------------------

def test_post_accepts_an_object_an_array_and_a_batch(api, db, workspace):
    assert api.post("/accounts", {"account_id": "a1", "name": "Acme"}).json()["created"] == 1
    assert api.post("/accounts", [{"account_id": "a2", "name": "Globex"}]).status_code == 200
    body = api.post("/accounts", {"batch": [{"account_id": "a3", "name": "Initech",
                                             "plan": "pro"}]}).json()
    assert (body["accepted"], body["created"], body["rejected"]) == (1, 1, [])
    accounts = {a.account_id: a for a in stored(db, Account, workspace)}
    assert sorted(accounts) == ["a1", "a2", "a3"]
    assert accounts["a3"].name == "Initech" and accounts["a3"].traits == {"plan": "pro"}


def test_mixed_batch_stores_the_good_rows_and_names_each_bad_one(api, db, workspace):
    response = api.post("/users", [
        {"user_id": "u1", "email": "ada@acme.io", "account_id": "a1"},
        {"user_id": "u2", "email": "not-an-email"},
        {"email": "nobody@acme.io"},
        {"user_id": "u3", "email": "grace@acme.io", "seats": "many", "age": 3},
        {"user_id": "u4", "email": "linus@acme.io", "age": "old"},
    ])
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["created"]) == (2, 2)
    assert body["rejected"] == [
        {"index": 1, "id": "u2", "reason": "email: not a valid email address: 'not-an-email'"},
        {"index": 2, "id": None, "reason": "user_id: required"},
        {"index": 4, "id": "u4", "reason": "age: expected a number, got 'old' (field type NUMBER)"},
    ]
    assert sorted(u.user_id for u in stored(db, User, workspace)) == ["u1", "u3"]


def test_every_row_rejected_is_422_with_the_same_body(api, db, workspace):
    response = api.post("/events", [{"event": "x", "user_id": "u1", "timestamp": "yesterday"}])
    assert response.status_code == 422
    assert response.json()["accepted"] == 0
    assert response.json()["rejected"][0]["reason"].startswith(
        "timestamp: expected ISO 8601 or epoch seconds/milliseconds, got 'yesterday'")
    assert stored(db, Event, workspace) == []


def test_update_mode_rejects_unknown_ids(api, db, workspace):
    api.post("/accounts", {"account_id": "a1", "name": "Acme"})
    body = api.post("/accounts?mode=update", [{"account_id": "a1", "plan": "pro"},
                                              {"account_id": "zz", "plan": "pro"}]).json()
    assert (body["accepted"], body["updated"]) == (1, 1)
    assert body["rejected"] == [{"index": 1, "id": "zz", "reason": "no account with account_id zz"}]
    response = api.post("/accounts?mode=update", {"account_id": "zz", "plan": "pro"})
    assert response.status_code == 422
    assert [a.account_id for a in stored(db, Account, workspace)] == ["a1"]


def test_invalid_mode_is_400_naming_the_allowed_ones(api):
    assert "upsert, update, remove" in error_of(api.post("/accounts?mode=insert", {}), 400)
    assert "insert, remove" in error_of(api.post("/events?mode=upsert", {}), 400)


def test_events_are_stored_once_per_event_id(api, db, workspace):
    event = {"event": "sign_in", "user_id": "u1", "timestamp": 1767225600, "event_id": "e1"}
    assert api.post("/events", event).json()["created"] == 1
    again = api.post("/events", [event, {**event, "event_id": "e2"}]).json()
    assert (again["accepted"], again["created"], again["duplicates"]) == (2, 1, 1)
    rows = stored(db, Event, workspace)
    assert sorted(e.event_id for e in rows) == ["e1", "e2"]
    stored_at = rows[0].timestamp.replace(tzinfo=timezone.utc)
    assert stored_at == datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_remove_mode_archives(api, db, workspace):
    api.post("/accounts", {"account_id": "a1", "name": "Acme"})
    assert api.post("/accounts?mode=remove", {"account_id": "a1"}).json()["removed"] == 1
    assert stored(db, Account, workspace)[0].archived_at is not None


def test_gzip_bodies_are_accepted(api, db, workspace):
    rows = [{"account_id": f"a{i}", "name": f"Account {i}"} for i in range(50)]
    response = api.post("/accounts", data=gzip.compress(orjson.dumps(rows)),
                        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert response.status_code == 200 and response.json()["created"] == 50
    assert len(stored(db, Account, workspace)) == 50
    broken = api.post("/accounts", data=b"\x1f\x8b not gzip", headers={"Content-Encoding": "gzip"})
    assert "not valid gzip" in error_of(broken, 400)


@pytest.mark.parametrize("body", [b"{not json", b"", b"42", b"\"text\""])
def test_a_body_that_is_not_a_json_object_or_array_is_400(api, body):
    assert error_of(api.post("/accounts", data=body), 400).startswith("body:")


def test_too_many_rows_is_413_naming_the_limit(api, db, workspace):
    rows = [{"account_id": f"a{i}", "name": "A"} for i in range(1001)]
    assert error_of(api.post("/accounts", rows), 413) == \
        "too many rows: 1,001 in one request; the limit is 1,000"
    assert stored(db, Account, workspace) == []


def test_too_many_bytes_is_413_naming_the_limit(app, api):
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    big = [{"account_id": "a1", "name": "x" * 20_000}]
    assert "the limit is 10,000 bytes" in error_of(api.post("/accounts", big), 413)
    bomb = gzip.compress(b"[" + b" " * 50_000 + b"]")
    response = api.post("/accounts", data=bomb, headers={"Content-Encoding": "gzip"})
    assert "larger than 10,000 bytes once decompressed" in error_of(response, 413)


def test_a_database_error_is_503_and_stores_nothing(api, db, workspace, drop_failing_trigger):
    install_failing_trigger(db)
    response = api.post("/accounts", [{"account_id": "a1", "name": "Acme"}])
    assert response.status_code == 503
    body = response.json()
    assert body["error"].startswith("database error:") and "refused by trigger" in body["error"]
    assert body["accepted"] == 0 and len(body["rejected"]) == 1
    assert stored(db, Account, workspace) == []


def install_failing_trigger(db) -> None:
    """A real database fault: a trigger that refuses every new account."""
    if db.engine.dialect.name == "sqlite":
        statements = ["CREATE TRIGGER refuse BEFORE INSERT ON accounts "
                      "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"]
    else:
        statements = [
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by trigger'; END $$",
            "CREATE TRIGGER refuse BEFORE INSERT ON accounts FOR EACH ROW "
            "EXECUTE FUNCTION refuse()",
        ]
    with db.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


@pytest.fixture
def drop_failing_trigger(app, db):
    """The PostgreSQL database is shared by every test of a worker: leave no trigger behind."""
    yield
    if db.engine.dialect.name == "postgresql":
        db.session.rollback()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS refuse ON accounts")
            conn.exec_driver_sql("DROP FUNCTION IF EXISTS refuse()")


def test_writes_are_logged_with_the_api_protocol(api, db, workspace):
    api.post("/users", [{"user_id": "u1", "email": "ada@acme.io"}, {"user_id": "u2"}])
    (entry,) = stored(db, IngestLog, workspace)
    assert (entry.protocol, entry.object, entry.operation) == ("api", "user", "upsert")
    assert (entry.rows_received, entry.rows_accepted, entry.rows_rejected) == (2, 1, 1)


# --- authentication and isolation -----------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("post", "/accounts"), ("get", "/accounts"), ("get", "/users/u1"), ("delete", "/events/e1"),
    ("get", "/fields"), ("post", "/fields"),
])
def test_every_endpoint_needs_a_key(live_server, method, path):
    response = getattr(requests, method)(f"{live_server}/api/v1{path}", json={})
    assert error_of(response, 401).startswith("missing API key")
    wrong = getattr(requests, method)(f"{live_server}/api/v1{path}",
                                      headers={"Authorization": "Bearer cor_nope"})
    assert error_of(wrong, 401) == "invalid or revoked API key"


def test_a_revoked_key_is_401(api, db, tenant):
    assert api.get("/accounts").status_code == 200
    revoke_keys(db.session, tenant.key[:12], tenant.id)
    db.session.commit()
    assert error_of(api.get("/accounts"), 401) == "invalid or revoked API key"


def test_the_key_may_come_as_basic_user_name(live_server, tenant):
    response = requests.get(f"{live_server}/api/v1/accounts", auth=(tenant.key, ""))
    assert response.status_code == 200


def test_another_workspace_sees_none_of_it(api, live_server, other_tenant, db):
    api.post("/accounts", {"account_id": "a1", "name": "Acme"})
    api.post("/users", {"user_id": "u1", "email": "ada@acme.io", "account_id": "a1"})
    api.post("/events", {"event": "x", "user_id": "u1", "timestamp": 0, "event_id": "e1"})
    other = Api(live_server, other_tenant.key)
    for path in ("/accounts/a1", "/users/u1", "/events/e1"):
        assert error_of(other.get(path), 404).startswith("no ")
        assert other.delete(path).status_code == 404
    for path in ("/accounts", "/users", "/events"):
        page = other.get(path).json()
        assert (page["data"], page["next_cursor"]) == ([], None)
    assert api.get("/accounts/a1").status_code == 200
    assert api.get("/events/e1").status_code == 200


# --- reads ----------------------------------------------------------------------------------

def seed_accounts(db, workspace, count: int) -> list[str]:
    ids = [f"acct-{i:04d}" for i in range(count)]
    for start in range(0, count, 1000):
        ingest(db.session, workspace, "account", "upsert",
               [{"account_id": i, "name": i.upper()} for i in ids[start:start + 1000]])
    return ids


def test_pagination_walks_every_record_once(api, db, workspace):
    ids = seed_accounts(db, workspace, 250)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 70, **({"cursor": cursor} if cursor else {})}
        page = api.get("/accounts", **params).json()
        seen += [a["account_id"] for a in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4 and seen == sorted(ids)
    first = api.get("/accounts", limit=70, cursor="").json()["data"]
    assert [a["account_id"] for a in first] == sorted(ids)[:70]


def test_limit_defaults_to_100_and_is_capped_at_1000(api, db, workspace):
    seed_accounts(db, workspace, 1001)
    assert len(api.get("/accounts").json()["data"]) == 100
    page = api.get("/accounts", limit=5000).json()
    assert len(page["data"]) == 1000 and page["next_cursor"]
    rest = api.get("/accounts", limit=5000, cursor=page["next_cursor"]).json()
    assert [a["account_id"] for a in rest["data"]] == ["acct-1000"]


@pytest.mark.parametrize("params, problem", [
    ({"limit": 0}, "limit:"), ({"limit": "ten"}, "limit:"), ({"cursor": "garbage"}, "cursor:"),
    ({"format": "xml"}, "format:"), ({"updated_since": "last week"}, "updated_since:"),
    ({"acount_id": "a1"}, "acount_id: Unknown field."),
])
def test_bad_list_parameters_are_400(api, params, problem):
    assert problem in error_of(api.get("/accounts", **params), 400)


def test_nul_characters_never_reach_the_database(api):
    assert "account_id: must not contain NUL" in error_of(api.get("/users", account_id="a\x00"),
                                                           400)
    assert "event:" in error_of(api.get("/events", event="\x00"), 400)
    assert api.get("/accounts/a\x00b").status_code == 404
    assert api.delete("/events/\x00").status_code == 404
    forged = base64.urlsafe_b64encode(orjson.dumps(["account", "a\x00"])).decode()
    assert "cursor:" in error_of(api.get("/accounts", cursor=forged), 400)


def test_a_cursor_only_works_on_its_own_list(api, db, workspace):
    seed_accounts(db, workspace, 3)
    cursor = api.get("/accounts", limit=1).json()["next_cursor"]
    assert "cursor:" in error_of(api.get("/users", cursor=cursor), 400)


def test_account_and_user_filters(api, db, workspace):
    api.post("/accounts", [{"account_id": "a1", "name": "A"}, {"account_id": "a2", "name": "B"}])
    api.post("/users", [{"user_id": "u1", "email": "1@a.io", "account_id": "a1"},
                        {"user_id": "u2", "email": "2@a.io", "account_id": "a2"},
                        {"user_id": "u3", "email": "3@a.io", "account_id": "a1"}])
    assert [u["user_id"] for u in api.get("/users", account_id="a1").json()["data"]] == ["u1", "u3"]
    later = datetime.now(timezone.utc).isoformat()
    assert api.post("/accounts?mode=update", {"account_id": "a2", "plan": "pro"}).ok
    assert [a["account_id"] for a in api.get("/accounts", updated_since=later).json()["data"]] \
        == ["a2"]
    api.delete("/accounts/a1")
    assert [a["account_id"] for a in api.get("/accounts").json()["data"]] == ["a2"]
    assert [a["account_id"] for a in api.get("/accounts", include_archived="true").json()["data"]] \
        == ["a1", "a2"]


def test_event_filters(api, db, workspace):
    api.post("/users", {"user_id": "u1", "email": "1@a.io", "account_id": "a1"})
    api.post("/events", [
        {"event_id": "e1", "event": "sign_in", "user_id": "u1",
         "timestamp": "2026-01-01T10:00:00Z"},
        {"event_id": "e2", "event": "export", "user_id": "u1", "timestamp": "2026-01-02T10:00:00Z"},
        {"event_id": "e3", "event": "sign_in", "user_id": "u2", "account_id": "a2",
         "timestamp": "2026-01-03T10:00:00Z"},
    ])

    def event_ids(**params) -> list[str]:
        return [e["event_id"] for e in api.get("/events", **params).json()["data"]]

    assert event_ids(event="sign_in") == ["e1", "e3"]
    assert event_ids(user_id="u1") == ["e1", "e2"]
    assert event_ids(account_id="a1") == ["e1", "e2"]  # taken from the user at ingest
    assert event_ids(since="2026-01-02T00:00:00Z") == ["e2", "e3"]
    assert event_ids(until="2026-01-02T10:00:00+00:00") == ["e1"]
    assert event_ids(since=1767312000, until="2026-01-03") == ["e2"]  # epoch seconds, a date
    event = api.get("/events/e1").json()
    assert event == {"event_id": "e1", "event": "sign_in", "user_id": "u1", "account_id": "a1",
                     "timestamp": "2026-01-01T10:00:00+00:00", "properties": {},
                     "received_at": event["received_at"]}


def test_csv_exports_every_matching_row_with_flattened_dimensions(api, db, workspace):
    api.post("/accounts", [
        {"account_id": "a1", "name": "Acme, Inc.", "plan": "pro", "created_at": "2024-05-01",
         "settings__sso": True, "tags": ["b2b", "eu"]},
        {"account_id": "a2", "name": "Globex", "employees": 40},
    ])
    response = api.get("/accounts", format="csv", limit=1)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["account_id"] for r in rows] == ["a1", "a2"]  # limit does not apply to CSV
    first = rows[0]
    assert first["name"] == "Acme, Inc." and first["plan"] == "pro"
    assert first["dimensions.created_at"] == "2024-05-01T00:00:00+00:00"
    assert first["settings"] == '{"sso":true}' and first["tags"] == '["b2b","eu"]'
    assert first["archived_at"] == "" and first["created_at"].endswith("+00:00")
    assert rows[1]["employees"] == "40" and rows[1]["plan"] == ""
    only = api.get("/accounts", format="csv", updated_since="2999-01-01").text
    assert len(list(csv.reader(io.StringIO(only)))) == 1  # the header alone


def test_csv_export_streams_past_one_chunk(api, db, workspace):
    ids = seed_accounts(db, workspace, 1500)
    rows = list(csv.DictReader(io.StringIO(api.get("/accounts", format="csv").text)))
    assert [r["account_id"] for r in rows] == ids


def test_csv_writes_numbers_postgresql_hands_back_beyond_64_bits(api):
    # JSONB keeps 1e20 as the exact numeric 100000000000000000000, read back as an integer
    assert api.post("/accounts", {"account_id": "a1", "name": "A", "stats": {"big": 1e20}}).ok
    row = next(csv.DictReader(io.StringIO(api.get("/accounts", format="csv").text)))
    assert orjson.loads(row["stats"])["big"] == 1e20


def test_event_csv_has_property_columns(api, db, workspace):
    api.post("/events", [
        {"event_id": "e1", "event": "export", "user_id": "u1", "timestamp": 0, "rows": 5},
        {"event_id": "e2", "event": "sign_in", "user_id": "u2", "timestamp": 0, "via": "sso"},
    ])
    rows = list(csv.DictReader(io.StringIO(api.get("/events", format="csv", event="export").text)))
    assert len(rows) == 1
    assert (rows[0]["event_id"], rows[0]["rows"], rows[0]["via"]) == ("e1", "5", "")
    assert rows[0]["timestamp"] == "1970-01-01T00:00:00+00:00"


def test_one_account_comes_with_its_metrics(api, db, workspace):
    api.post("/accounts", {"account_id": "a1", "name": "Acme", "plan": "pro"})
    api.post("/users", [{"user_id": "u1", "email": "1@a.io", "account_id": "a1"},
                        {"user_id": "u2", "email": "2@a.io", "account_id": "a1"}])
    now = datetime.now(timezone.utc)
    api.post("/events", [{"event": "sign_in", "user_id": "u1", "timestamp": now.isoformat()},
                         {"event": "export", "user_id": "u1", "timestamp": now.isoformat()}])
    body = api.get("/accounts/a1").json()
    assert (body["account_id"], body["name"], body["dimensions"]) == ("a1", "Acme", {"plan": "pro"})
    metrics = body["metrics"]
    assert (metrics["users"], metrics["active_users_7d"], metrics["active_users_30d"],
            metrics["events_30d"]) == (2, 1, 1, 2)
    assert datetime.fromisoformat(metrics["last_seen"]) == now
    api.post("/accounts", {"account_id": "a2", "name": "Quiet"})
    assert api.get("/accounts/a2").json()["metrics"] == {
        "users": 0, "active_users_7d": 0, "active_users_30d": 0, "events_30d": 0,
        "events_prev_30d": 0, "last_seen": None}


def test_one_user(api):
    api.post("/users", {"user_id": "u/1", "email": "ada@acme.io", "title": "CTO"})
    body = api.get("/users/u/1").json()
    assert (body["user_id"], body["email"], body["account_id"], body["dimensions"]) == \
        ("u/1", "ada@acme.io", None, {"title": "CTO"})
    assert body["archived_at"] is None and body["created_at"].endswith("+00:00")
    assert error_of(api.get("/users/nobody"), 404) == "no user with user_id 'nobody'"


# --- deletes --------------------------------------------------------------------------------

def test_delete_archives_an_account_and_a_sync_restores_it(api, db, workspace):
    api.post("/accounts", {"account_id": "a1", "name": "Acme"})
    response = api.delete("/accounts/a1")
    assert response.status_code == 200 and response.json()["removed"] == 1
    assert stored(db, Account, workspace)[0].archived_at is not None
    assert api.get("/accounts/a1").status_code == 404
    assert api.get("/accounts/a1", include_archived="true").json()["archived_at"]
    assert api.delete("/accounts/a1").status_code == 404  # already archived
    api.post("/accounts", {"account_id": "a1", "name": "Acme"})
    assert api.get("/accounts/a1").json()["archived_at"] is None


def test_delete_archives_a_user(api, db, workspace):
    api.post("/users", {"user_id": "u1", "email": "ada@acme.io"})
    assert api.delete("/users/u1").json()["removed"] == 1
    assert stored(db, User, workspace)[0].archived_at is not None
    assert api.get("/users").json()["data"] == []


def test_delete_removes_an_event_and_its_activity(api, db, workspace):
    api.post("/events", [{"event_id": "e1", "event": "x", "user_id": "u1", "timestamp": 0},
                         {"event_id": "e2", "event": "x", "user_id": "u1", "timestamp": 0}])
    assert api.delete("/events/e1").json()["removed"] == 1
    assert [e.event_id for e in stored(db, Event, workspace)] == ["e2"]
    assert [a.count for a in stored(db, DailyActivity, workspace)] == [1]
    assert error_of(api.delete("/events/e1"), 404) == "no event with event_id 'e1'"


# --- the field catalog ----------------------------------------------------------------------

def test_fields_lists_the_catalog(api):
    accounts = api.get("/fields", object="account").json()["data"]
    by_key = {f["key"]: f for f in accounts}
    assert by_key["name"] == {"object": "account", "key": "name", "label": "Company Name",
                              "type": "STRING", "default": True, "format": None,
                              "hidden": False}
    assert by_key["arr"]["type"] == "NUMBER" and by_key["arr"]["format"] == "currency:USD"
    everything = api.get("/fields").json()["data"]
    assert {f["object"] for f in everything} == {"account", "user", "event"}
    assert "object:" in error_of(api.get("/fields", object="invoice"), 400)


def test_create_a_custom_field(api, db, workspace):
    response = api.post("/fields?object=user", {"key": "nps_score", "type": "NUMBER"})
    assert response.status_code == 201
    assert response.json() == {"object": "user", "key": "nps_score", "label": "Nps Score",
                               "type": "NUMBER", "default": False, "format": None,
                               "hidden": False}
    (field,) = stored(db, Field, workspace, object="user", key="nps_score")
    assert field.type == "NUMBER" and not field.is_default
    # The engine now types incoming values by it.
    rejected = api.post("/users", {"user_id": "u1", "email": "a@b.io", "nps_score": "high"})
    assert rejected.status_code == 422
    body = api.post("/fields", {"object": "event", "key": "plan", "label": "Plan", "type": "ENUM"})
    assert body.status_code == 201 and body.json()["label"] == "Plan"


@pytest.mark.parametrize("query, body, status, problem", [
    ("?object=user", {"key": "NPS_score", "type": "NUMBER"}, 409, "exists"),
    ("?object=user", {"key": "email", "type": "EMAIL"}, 409, "exists"),
    ("?object=account", {"key": "company_name", "type": "STRING"}, 409, "alias of the core"),
    ("?object=user", {"key": "score", "type": "INTEGER"}, 422, "type: Must be one of"),
    ("?object=user", {"key": "a__b", "type": "STRING"}, 422, "key:"),
    ("?object=user", {"type": "STRING"}, 422, "key: Missing data"),
    ("", {"key": "score", "type": "NUMBER"}, 422, "object: required"),
    ("?object=user", {"object": "event", "key": "score", "type": "NUMBER"}, 422, "object:"),
    ("?object=user", ["key"], 400, "body:"),
    ("?object=invoice", {"key": "score", "type": "NUMBER"}, 400, "object:"),
])
def test_field_creation_errors(api, query, body, status, problem):
    api.post("/fields?object=user", {"key": "nps_score", "type": "NUMBER"})
    assert problem in error_of(api.post(f"/fields{query}", body), status)


# --- the OpenAPI document -------------------------------------------------------------------

def test_openapi_documents_every_route(app, live_server):
    response = requests.get(f"{live_server}/api/v1/openapi.json")  # public: no key
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "basic"}
    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    routes = {(route_path(rule.rule, rule.arguments), method)
              for rule in app.url_map.iter_rules()
              if rule.endpoint.startswith(("api.", "alerts_api.", "signals_api.", "scores_api."))
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    expanded = {(p.replace("{collection}", c).replace("{record_id}", "{" + k + "}"), m)
                for p, m in routes
                for c, k in (("accounts", "account_id"), ("users", "user_id"),
                             ("events", "event_id"))}
    assert expanded == documented


def route_path(rule: str, arguments) -> str:
    for name in arguments:
        rule = rule.replace(f"<any(accounts, users, events):{name}>", "{" + name + "}")
        rule = rule.replace(f"<path:{name}>", "{" + name + "}")
        rule = rule.replace(f"<{name}>", "{" + name + "}")
    return rule


def test_schemathesis_loads_the_document():
    import schemathesis

    from correlated import create_app
    from correlated.protocols.schemas import openapi

    create_app({"SECRET_KEY": "t"})  # feature packages add their operations as the app is built
    schema = schemathesis.openapi.from_dict(openapi())
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) == 42  # 17 for the data, 10 for alerts, 8 for signals, 7 for scores
    assert {op.method.upper() for op in operations} == {"GET", "POST", "PATCH", "DELETE"}
