"""The field catalog under attack (issue 13): a new field's type under concurrent first writes,
one key per field whatever its case, the cap on custom fields, hidden and deleted fields."""
from __future__ import annotations

import threading

import pytest
import requests
import sqlalchemy as sa

from correlated.auth import add_member
from correlated.ingest import catalog as field_catalog
from correlated.ingest.engine import ingest
from correlated.models import Account, Event, Field, User

from ..web.test_dashboard import login, post

ROUNDS = 12


def catalog_rows(db, workspace, obj="account"):
    return db.session.execute(sa.select(Field.key, Field.type).where(
        Field.workspace_id == workspace.id, Field.object == obj,
        Field.is_default.is_(False))).all()


def traits(db, workspace, account_id):
    db.session.expire_all()
    row = db.session.get(Account, (workspace.id, account_id))
    return row.traits if row is not None else None


def post_together(url, key, bodies):
    """Each body posted by its own thread, released at the same instant."""
    barrier = threading.Barrier(len(bodies))
    answers = [None] * len(bodies)

    def send(i):
        with requests.Session() as http:
            http.headers.update(key)
            barrier.wait()
            answers[i] = http.post(url, json=bodies[i], timeout=30)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


# --- 2. a new field's type races ------------------------------------------------------------

def test_concurrent_first_values_of_a_new_field_agree_with_its_type(db, tenant, live_server):
    """Round after round, `{"k": 5}` and `{"k": "not a number"}` race to create `k`: the
    catalog's type is the one every stored value has, and the other row is rejected."""
    url = f"{live_server}/api/v1/accounts"
    for n in range(ROUNDS):
        key = f"k{n}"
        answers = post_together(url, tenant.headers, [
            [{"account_id": f"num{n}", "name": "N", key: 5}],
            [{"account_id": f"str{n}", "name": "S", key: "not a number"}],
        ])
        assert all(a.status_code in (200, 422) for a in answers), [a.text for a in answers]
        db.session.rollback()  # a new read transaction: SQLite's would keep its snapshot
        (typ,) = db.session.scalars(sa.select(Field.type).where(
            Field.workspace_id == tenant.id, Field.key == key)).all()
        stored = {acc: (traits(db, tenant.workspace, acc) or {}).get(key)
                  for acc in (f"num{n}", f"str{n}")}
        if typ == "NUMBER":  # the string cannot be a number: that row is rejected
            assert stored == {f"num{n}": 5, f"str{n}": None}, (n, stored)
            assert answers[1].status_code == 422
            reason = answers[1].json()["rejected"][0]["reason"]
            assert reason == f"{key}: expected a number, got 'not a number' (field type NUMBER)"
        else:  # a number is text too: both stored, as text
            assert typ == "STRING" and stored == {f"num{n}": "5", f"str{n}": "not a number"}, \
                (n, stored)


# --- 3. mixed-case field names ---------------------------------------------------------------

def test_one_key_per_field_whatever_the_case_of_the_first_row(db, workspace):
    ingest(db.session, workspace, "account", "upsert", [
        {"account_id": "cs1", "name": "C1", "SalesRegion": "EMEA"},
        {"account_id": "cs2", "name": "C2", "SalesRegion": "EMEA"},
        {"account_id": "cs3", "name": "C3", "salesREGION": "APAC"},
    ])
    assert catalog_rows(db, workspace) == [("SalesRegion", "STRING")]
    assert [traits(db, workspace, a) for a in ("cs1", "cs2", "cs3")] == [
        {"SalesRegion": "EMEA"}, {"SalesRegion": "EMEA"}, {"SalesRegion": "APAC"}]
    # A later batch in another case lands on the same key, and can clear it.
    ingest(db.session, workspace, "account", "upsert",
           [{"account_id": "cs1", "name": "C1", "salesregion": None},
            {"account_id": "cs4", "name": "C4", "SALESREGION": "AMER"}])
    assert traits(db, workspace, "cs1") == {}
    assert traits(db, workspace, "cs4") == {"SalesRegion": "AMER"}
    assert len(catalog_rows(db, workspace)) == 1


def test_the_catalog_refuses_a_second_case_of_a_key(db, workspace):
    """The unique index on (workspace, object, lower(key)) holds whoever writes the catalog."""
    db.session.add(Field(workspace_id=workspace.id, object="account", key="Tier", label="Tier",
                         type="STRING"))
    db.session.commit()
    db.session.add(Field(workspace_id=workspace.id, object="account", key="TIER", label="T",
                         type="NUMBER"))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_filters_and_csv_find_every_row_of_a_mixed_case_field(db, tenant, client):
    ingest(db.session, tenant.workspace, "account", "upsert", [
        {"account_id": "cs1", "name": "C1", "SalesRegion": "EMEA"},
        {"account_id": "cs2", "name": "C2", "salesregion": "EMEA"},
    ])
    csv = client.get("/api/v1/accounts?format=csv", headers=tenant.headers).get_data(as_text=True)
    lines = csv.splitlines()
    assert lines[0].endswith(",SalesRegion")
    assert all(line.endswith(",EMEA") for line in lines[1:]) and len(lines) == 3


def test_the_migration_merges_keys_that_differ_only_in_case(app, db, workspace):
    """Data written before 0004: `SalesRegion` on one account, `salesregion` on another and in
    the catalog. After the migration: one field, every value under its key."""
    from alembic.script import ScriptDirectory
    from flask_migrate import downgrade, upgrade

    from correlated import MIGRATIONS

    script = ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config(
        str(MIGRATIONS)))
    before = script.get_revision("0004_catalog").down_revision
    ws = workspace.id
    db.session.close()  # no connection of the session outlives the schema change
    db.engine.dispose()
    downgrade(directory=str(MIGRATIONS), revision=before)
    try:
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO fields (workspace_id, object, key, label, type, is_default, "
                "created_at) VALUES (:ws, 'account', 'salesregion', 'Salesregion', 'STRING', "
                ":f, '2026-01-01'), (:ws, 'account', 'SalesRegion', 'Sales Region', 'STRING', "
                ":f, '2026-01-02')"), {"ws": ws, "f": False})
            for account_id, doc in (("cs1", '{"SalesRegion": "EMEA"}'),
                                    ("cs2", '{"salesregion": "APAC"}'),
                                    ("cs3", '{"SalesRegion": "AMER", "salesregion": "x"}')):
                conn.execute(sa.text(
                    "INSERT INTO accounts (workspace_id, account_id, name, traits, created_at, "
                    "updated_at) VALUES (:ws, :id, 'C', :doc, '2026-01-01', '2026-01-01')"),
                    {"ws": ws, "id": account_id, "doc": doc})
    finally:
        db.engine.dispose()
        upgrade(directory=str(MIGRATIONS))
        db.engine.dispose()
    assert catalog_rows(db, workspace) == [("salesregion", "STRING")]
    assert [traits(db, workspace, a) for a in ("cs1", "cs2", "cs3")] == [
        {"salesregion": "EMEA"}, {"salesregion": "APAC"}, {"salesregion": "x"}]


# --- 7. the cap on custom fields, hidden and deleted fields -----------------------------------

@pytest.fixture
def cap(monkeypatch):
    """A small CORRELATED_MAX_CUSTOM_FIELDS (create_app puts the setting here)."""
    monkeypatch.setattr(field_catalog, "MAX_CUSTOM_FIELDS", 5)
    return 5


def test_the_setting_sets_the_cap():
    from correlated import create_app

    create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "MAX_CUSTOM_FIELDS": 7})
    assert field_catalog.MAX_CUSTOM_FIELDS == 7
    create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert field_catalog.MAX_CUSTOM_FIELDS == 200


def test_rows_that_would_pass_the_cap_are_rejected_naming_it(db, workspace, cap):
    result = ingest(db.session, workspace, "account", "upsert", [
        {"account_id": "a1", "name": "A", "f1": 1, "f2": 2, "f3": 3},
        {"account_id": "a2", "name": "B", "f4": 4, "f5": 5, "f6": 6, "f7": 7},
        {"account_id": "a3", "name": "C", "f1": 10, "f4": "four"},
    ])
    assert result.accepted == 2
    (rejected,) = result.rejected
    assert (rejected.index, rejected.reason) == (1, (
        "f6: new field not created: accounts have the maximum of 5 custom fields "
        "(CORRELATED_MAX_CUSTOM_FIELDS): delete unused ones or raise the limit "
        "(1 more new fields in this row)"))
    # The rejected row created nothing: its f5 did not take a place.
    assert sorted(k for k, _t in catalog_rows(db, workspace)) == ["f1", "f2", "f3", "f4"]
    assert traits(db, workspace, "a3") == {"f1": 10, "f4": "four"}
    again = ingest(db.session, workspace, "account", "upsert", [
        {"account_id": "a4", "name": "D", "f5": 5}, {"account_id": "a5", "name": "E", "f6": 6},
        {"account_id": "a6", "name": "F", "f1": 1}])
    assert again.accepted == 2 and again.rejected[0].reason.startswith("f6: new field not created")


def test_one_row_of_thousands_of_new_keys_is_rejected_once(db, workspace):
    row = {"account_id": "wide", "name": "W", **{f"col{i:04}": i for i in range(1700)}}
    result = ingest(db.session, workspace, "account", "upsert", [row])
    (rejected,) = result.rejected
    assert rejected.reason == (
        "col0200: new field not created: accounts have the maximum of 200 custom fields "
        "(CORRELATED_MAX_CUSTOM_FIELDS): delete unused ones or raise the limit "
        "(1499 more new fields in this row)")
    assert catalog_rows(db, workspace) == []


def test_concurrent_creators_do_not_pass_the_cap(db, tenant, live_server, cap):
    bodies = [[{"account_id": f"a{i}", "name": "A", **{f"t{i}_{j}": j for j in range(2)}}]
              for i in range(6)]
    answers = post_together(f"{live_server}/api/v1/accounts", tenant.headers, bodies)
    assert sorted(a.status_code for a in answers) == [200, 200, 422, 422, 422, 422]
    db.session.rollback()
    assert len(catalog_rows(db, tenant.workspace)) == 4
    for answer in answers:
        if answer.status_code == 422:
            assert "maximum of 5 custom fields" in answer.json()["rejected"][0]["reason"]


def test_creating_a_field_over_the_cap_is_refused(db, tenant, client, cap):
    for i in range(cap):
        made = client.post("/api/v1/fields?object=user", headers=tenant.headers,
                           json={"key": f"u{i}", "type": "NUMBER"})
        assert made.status_code == 201, made.get_json()
    refused = client.post("/api/v1/fields?object=user", headers=tenant.headers,
                          json={"key": "one_more", "type": "NUMBER"})
    assert refused.status_code == 409
    assert refused.get_json()["error"] == (
        "key: users have the maximum of 5 custom fields (CORRELATED_MAX_CUSTOM_FIELDS): delete "
        "unused ones or raise the limit")
    exists = client.post("/api/v1/fields?object=user", headers=tenant.headers,
                         json={"key": "U0", "type": "STRING"})
    assert exists.status_code == 409 and "'u0' exists" in exists.get_json()["error"]


def test_ingest_reads_only_the_keys_of_its_batch(db, workspace):
    many = [{"workspace_id": workspace.id, "object": "account", "key": f"old{i}",
             "label": f"Old {i}", "type": "STRING", "is_default": False} for i in range(3000)]
    db.session.execute(sa.insert(Field), many)  # a catalog from before the cap
    db.session.commit()
    seen = []

    def loaded(target, _context):  # every Field the ORM builds from a query's rows
        seen.append(target.key)

    sa.event.listen(Field, "load", loaded)
    try:
        result = ingest(db.session, workspace, "account", "upsert",
                        [{"account_id": "a1", "name": "A", "old7": "x", "OLD8": "y", "plan": "p"}])
    finally:
        sa.event.remove(Field, "load", loaded)
    assert result.accepted == 1
    assert sorted(seen) == ["old7", "old8", "plan"]
    assert traits(db, workspace, "a1") == {"old7": "x", "old8": "y", "plan": "p"}


def test_pages_and_syncs_answer_with_a_catalog_from_before_the_cap(db, tenant, client):
    """2,100 fields: more columns than SQLite's and PostgreSQL's select lists take at once."""
    db.session.execute(sa.insert(Field), [
        {"workspace_id": tenant.id, "object": "account", "key": f"old{i}", "label": f"Old {i}",
         "type": "STRING", "is_default": False} for i in range(2100)])
    db.session.commit()
    ingest(db.session, tenant.workspace, "account", "upsert",
           [{"account_id": "a1", "name": "A", "old5": "x"}])
    assert login(client, tenant.admin_email, tenant.admin_password).status_code == 302
    page = client.get("/fields?object=account")
    assert page.status_code == 200 and "old2099" in page.get_data(as_text=True)
    assert client.get("/accounts/a1").status_code == 200


@pytest.fixture
def fields_of(db, tenant):
    ingest(db.session, tenant.workspace, "account", "upsert", [
        {"account_id": "a1", "name": "A", "tier": "gold", "score": 3},
        {"account_id": "a2", "name": "B", "tier": "silver"}])
    ingest(db.session, tenant.workspace, "event", "insert", [
        {"event": "Viewed", "user_id": "u1", "timestamp": "2026-11-30T10:00:00Z", "page": "/a"}])
    return tenant


def hightouch_fields(client, tenant, obj="account"):
    answer = client.post("/hightouch/rpc", headers=tenant.headers, json={
        "jsonrpc": "2.0", "id": 1, "method": "list_fields", "params": {"object": obj}})
    return [f["id"] for f in answer.get_json()["result"]["fields"]]


def test_a_hidden_field_leaves_pickers_csv_and_sync_lists_but_keeps_its_values(
        db, client, fields_of):
    tenant = fields_of
    changed = client.patch("/api/v1/fields/account/tier", headers=tenant.headers,
                           json={"hidden": True})
    assert changed.status_code == 200 and changed.get_json()["hidden"] is True
    assert "tier" not in hightouch_fields(client, tenant) and "score" in hightouch_fields(
        client, tenant)
    csv = client.get("/api/v1/accounts?format=csv", headers=tenant.headers).get_data(as_text=True)
    assert "tier" not in csv.splitlines()[0] and "score" in csv.splitlines()[0]
    listed = {f["key"]: f["hidden"] for f in client.get(
        "/api/v1/fields?object=account", headers=tenant.headers).get_json()["data"]}
    assert listed["tier"] is True and listed["score"] is False
    ingest(db.session, tenant.workspace, "account", "upsert",
           [{"account_id": "a3", "name": "C", "tier": "bronze"}])
    assert traits(db, tenant.workspace, "a3") == {"tier": "bronze"}
    assert login(client, tenant.admin_email, tenant.admin_password).status_code == 302
    accounts = client.get("/accounts").get_data(as_text=True)
    assert 'value="score"' in accounts and 'value="tier"' not in accounts
    assert "Tier" not in client.get("/accounts/a1").get_data(as_text=True)
    shown = post(client, "/fields/account/tier/hidden", {"hidden": "false"}, "/fields")
    assert shown.status_code == 302
    assert "tier" in hightouch_fields(client, tenant)


def test_deleting_a_field_removes_its_values(db, client, fields_of):
    tenant = fields_of
    deleted = client.delete("/api/v1/fields/account/tier", headers=tenant.headers)
    assert deleted.status_code == 200
    assert deleted.get_json() == {"object": "account", "key": "tier", "values_removed": 2}
    assert traits(db, tenant.workspace, "a1") == {"score": 3}
    assert traits(db, tenant.workspace, "a2") == {}
    assert [k for k, _t in catalog_rows(db, tenant.workspace)] == ["score"]
    gone = client.delete("/api/v1/fields/account/tier", headers=tenant.headers)
    assert gone.status_code == 404 and gone.get_json()["error"] == "no account field 'tier'"
    default = client.delete("/api/v1/fields/account/plan", headers=tenant.headers)
    assert default.status_code == 409 and "only custom fields" in default.get_json()["error"]
    assert client.patch("/api/v1/fields/account/score", headers=tenant.headers,
                        json={"hidden": "maybe"}).status_code == 422
    # From the dashboard: an event property, its values gone from the events.
    assert login(client, tenant.admin_email, tenant.admin_password).status_code == 302
    assert post(client, "/fields/event/page/delete", {}, "/fields?object=event").status_code == 302
    db.session.rollback()
    assert db.session.scalars(sa.select(Event.properties)).all() == [{}]
    assert "page" not in [k for k, _t in catalog_rows(db, tenant.workspace, "event")]


def test_a_deleted_key_with_quotes_is_removed_on_both_engines(db, client, tenant):
    ingest(db.session, tenant.workspace, "user", "upsert", [
        {"user_id": "u1", "email": "a@b.io", 'say "hi"\\': "x", "keep": 1}])
    deleted = client.delete('/api/v1/fields/user/say "hi"\\', headers=tenant.headers)
    assert deleted.get_json()["values_removed"] == 1
    db.session.expire_all()
    assert db.session.get(User, (tenant.id, "u1")).traits == {"keep": 1}


def test_members_can_neither_hide_nor_delete(app, db, fields_of):
    add_member(db.session, fields_of.workspace, "viewer@acme.example", "viewer password 1")
    db.session.commit()
    client = app.test_client()
    assert login(client, "viewer@acme.example", "viewer password 1").status_code == 302
    assert post(client, "/fields/account/tier/delete", {}, "/fields").status_code == 403
    assert post(client, "/fields/account/tier/hidden", {"hidden": "true"},
                "/fields").status_code == 403
    assert traits(db, fields_of.workspace, "a1") == {"tier": "gold", "score": 3}


def test_unstorable_column_names_are_rejected_before_any_catalog_lookup(db, workspace):
    result = ingest(db.session, workspace, "account", "upsert", [
        {"account_id": "a1", "name": "A", "bad\x00key": 1},
        {"account_id": "a2", "name": "B", "\ud800": 2},
        {"account_id": "a3", "name": "C", "fine": 3}])
    assert result.error is None and result.accepted == 1
    assert [r.reason for r in result.rejected] == [
        "bad\\x00key: column name contains a NUL character",
        "\\ud800: column name contains invalid unicode (a lone surrogate)"]
