"""Hightouch Custom Destination over real HTTP: configure -> validate -> behavior -> add ->
change -> remove for each object, with bad rows mixed in, checked against the database."""
import pytest
import sqlalchemy as sa
from jsonrpcclient import parse, request

from correlated.models import Account, Event, Field, IngestLog, User

from ..rpc_client import Client, RpcFailed, drop_refusal, fresh, refuse_account, run_ddl

ACCOUNTS = {
    "object": "account", "mode": "upsert",
    "identifierMapping": [{"from": "ACCOUNT_ID", "to": "account_id"}],  # the spec's list shape
    "mappings": [{"from": "COMPANY", "to": "name"}, {"from": "PLAN", "to": "plan"},
                 {"from": "SEATS", "to": "seats"}],
    "customMappings": [{"from": "HEALTH", "to": "health_score"}],
    "removeAction": "archive",
}
USERS = {
    "object": "user", "mode": "upsert",
    "identifierMapping": {"from": "user_email", "to": "email"},  # Hightouch's examples: one object
    "mappings": [{"from": "uid", "to": "user_id"}, {"from": "user_fn", "to": "first_name"},
                 {"from": "org", "to": "account_id"}],
    "customMappings": [{"from": "user_ltv", "to": "ltv"}],
}
EVENTS = {
    "object": "event", "mode": "insert",
    "mappings": [{"from": "happened_at", "to": "timestamp"}, {"from": "who", "to": "user_id"},
                 {"from": "event_key", "to": "event_id"}, {"from": "org", "to": "account_id"}],
    "customMappings": [{"from": "pages", "to": "page_count"}],
    "eventName": "Report Viewed",
    "deleteRemovedEvents": True,
}


@pytest.fixture
def ht(live_server, tenant):
    return Client(live_server + "/hightouch/rpc", tenant.key)


def fields_by_id(ht, obj, mode):
    return {f["id"]: f for f in ht.call("list_fields", object=obj, mode=mode)["fields"]}


def test_objects_and_modes_describe_themselves(ht):
    objects = ht.call("list_objects")["objects"]
    assert [(o["id"], o["label"]) for o in objects] == [
        ("account", "Account"), ("user", "User"), ("event", "Event")]
    assert all(len(o["description"]) > 20 for o in objects)
    modes = {obj: ht.call("list_modes", object=obj)["modes"]
             for obj in ("account", "user", "event")}
    assert [m["id"] for m in modes["account"]] == ["upsert", "update"]
    assert [m["id"] for m in modes["user"]] == ["upsert", "update"]
    assert [m["id"] for m in modes["event"]] == ["insert"]
    assert all(m["label"] and len(m["description"]) > 20 for ms in modes.values() for m in ms)


def test_fields_come_from_the_workspace_catalog(ht, db, tenant):
    db.session.add(Field(workspace_id=tenant.id, object="account", key="nps", label="NPS",
                         type="NUMBER"))
    db.session.add(Field(workspace_id=tenant.id, object="account", key="odd", label="Odd",
                         type="SOMETHING_NEW"))
    db.session.commit()
    account = fields_by_id(ht, "account", "upsert")
    assert account["account_id"] == {**account["account_id"], "identifier": True,
                                     "required": True, "type": "STRING", "label": "Account ID"}
    assert account["name"]["required"] and not account["name"]["identifier"]
    assert account["arr"]["type"] == "NUMBER" and account["renewal_date"]["type"] == "DATE"
    assert account["nps"] == {"id": "nps", "label": "NPS", "type": "NUMBER", "identifier": False,
                              "required": False, "description": "Custom field."}
    assert account["odd"]["type"] == "UNKNOWN"
    assert list(account)[:3] == ["account_id", "name", "domain"]  # core, defaults, then custom
    # Only the ID is required to update records Correlated already has.
    assert not fields_by_id(ht, "account", "update")["name"]["required"]
    user = fields_by_id(ht, "user", "upsert")
    assert {k for k, f in user.items() if f["identifier"]} == {"user_id", "email"}
    assert {k for k, f in user.items() if f["required"]} == {"user_id", "email"}
    assert user["email"]["type"] == "EMAIL" and user["account_id"]["type"] == "REFERENCE"
    event = fields_by_id(ht, "event", "insert")
    assert {k for k, f in event.items() if f["required"]} == {"event", "timestamp", "user_id"}
    assert event["timestamp"]["type"] == "DATETIME" and event["user_id"]["type"] == "REFERENCE"
    assert not any(f["identifier"] for f in event.values())


def test_options_are_a_react_jsonschema_form(ht, db, tenant):
    account = ht.call("list_options", object="account", mode="upsert")["options"]
    props = account["schema"]["properties"]
    assert account["schema"]["type"] == "object"
    assert props["createFields"]["type"] == "boolean" and props["createFields"]["default"] is True
    assert props["removeAction"]["enum"] == ["archive", "delete"]
    assert len(props["removeAction"]["enumNames"]) == 2
    assert props["batchSize"] == {**props["batchSize"], "type": "integer", "default": 100,
                                  "minimum": 1, "maximum": 1000}
    assert account["uiSchema"]["removeAction"] == {"ui:widget": "radio"}
    update = ht.call("list_options", object="user", mode="update")["options"]["schema"]
    assert "removeAction" not in update["properties"]  # update mode never removes
    event = ht.call("list_options", object="event", mode="insert")["options"]["schema"]
    assert event["properties"]["eventName"]["type"] == "string"
    assert event["properties"]["deleteRemovedEvents"]["default"] is False
    tenant.workspace.allow_custom_fields = False
    db.session.commit()
    options = ht.call("list_options", object="user")["options"]["schema"]["properties"]
    assert options["createFields"]["default"] is False


def test_validate_names_each_problem_in_plain_language(ht):
    as_list = {**USERS, "identifierMapping": [USERS["identifierMapping"]]}
    for good in (ACCOUNTS, USERS, EVENTS, as_list):
        assert ht.call("validate", configuration=good) == {"errors": []}
    cases = [
        ({"object": "invoice", "mode": "upsert"}, ["Choose what to sync: Account, User or Event"]),
        ({"object": "event", "mode": "upsert"}, ["Event syncs can use Insert, not 'upsert'"]),
        ({**ACCOUNTS, "mappings": []}, ["Map a column to Company Name (name)"]),
        ({**USERS, "mappings": [{"from": "uid", "to": "user_id"}],
          "identifierMapping": {"from": "x", "to": "first_name"}},
         ["Map a column to Email (email)",
          "Records are matched on User ID or Email, not 'first_name'"]),
        ({**EVENTS, "eventName": None, "mappings": EVENTS["mappings"][1:]},
         ["Map a column to Event Name (event)", "Map a column to Timestamp (timestamp)"]),
        ({**USERS, "createFields": False}, ["'ltv' is not a Correlated field and creating custom "
                                            "fields is turned off"]),
        ({**ACCOUNTS,
          "mappings": ACCOUNTS["mappings"] + [{"from": "ORG_NAME", "to": "company_name"}]},
         ["Columns 'COMPANY', 'ORG_NAME' map to the same field, Company Name"]),
        ({**ACCOUNTS, "removeAction": "shred", "batchSize": 0},
         ["When a row leaves the model: choose archive or delete", "Batch size: expected a whole"]),
        ({**EVENTS, "mappings": EVENTS["mappings"][:2]},
         ["To delete events that leave the model, map a column to Event ID"]),
        ({**ACCOUNTS, "mappings": [{"from": "COMPANY"}, {"to": "name"}]},
         ['mappings: each mapping needs a source column ("from") and a Correlated field '
          '("to"); got {"from": "COMPANY"}', "mappings: each mapping needs",
          "Map a column to Company Name"]),
    ]
    for configuration, expected in cases:
        errors = ht.call("validate", configuration=configuration)["errors"]
        assert len(errors) == len(expected), (configuration, errors)
        for error, start in zip(errors, expected, strict=True):
            assert error.startswith(start), (error, start)


def test_behavior_follows_object_mode_and_batch_size(ht):
    assert ht.call("behavior", configuration=ACCOUNTS) == {
        "batchSize": 100, "operations": {"add": True, "change": True, "remove": True},
        "skipInitialRun": False}
    assert ht.call("behavior", configuration={**USERS, "mode": "update", "batchSize": 250}) == {
        "batchSize": 250, "operations": {"add": True, "change": True, "remove": False},
        "skipInitialRun": False}
    events = ht.call("behavior", configuration={**EVENTS, "deleteRemovedEvents": False})
    assert events["operations"] == {"add": True, "change": False, "remove": False}
    assert ht.call("behavior", configuration=EVENTS)["operations"]["remove"] is True
    assert ht.call("behavior")["batchSize"] == 100  # the spec's behavior has no body
    with pytest.raises(RpcFailed) as failed:
        ht.call("behavior", configuration={"object": "invoice"})
    assert failed.value.error.code == -32602


def test_account_sync_life_cycle(ht, db, tenant):
    assert ht.call("validate", configuration=ACCOUNTS)["errors"] == []
    rows = [
        {"ACCOUNT_ID": "a1", "COMPANY": "Acme", "PLAN": "pro", "SEATS": 12, "HEALTH": 0.9,
         "IGNORED": "not mapped"},
        {"ACCOUNT_ID": "a2", "COMPANY": "Globex", "PLAN": "free", "SEATS": "3"},
        {"ACCOUNT_ID": "a3", "COMPANY": None},
        {"ACCOUNT_ID": "a4", "COMPANY": "Initech", "SEATS": "a dozen"},
        {"ACCOUNT_ID": "", "COMPANY": "No ID"},
    ]
    result = ht.call("add", idColumn="ACCOUNT_ID", configuration=ACCOUNTS, rows=rows)
    assert result == {"rejectedRows": [
        {"id": "a3", "reason": "name: required"},
        {"id": "a4", "reason": "seats: expected a number, got 'a dozen' (field type NUMBER)"},
        {"id": "", "reason": "account_id: required"},
    ]}
    a1 = fresh(db, Account, tenant, "a1")
    assert (a1.name, a1.traits) == ("Acme", {"plan": "pro", "seats": 12, "health_score": 0.9})
    assert fresh(db, Account, tenant, "a2").traits == {"plan": "free", "seats": 3}
    assert fresh(db, Account, tenant, "a3") is None and fresh(db, Account, tenant, "a4") is None
    assert db.session.get(Field, (tenant.id, "account", "health_score")).type == "NUMBER"
    assert "health_score" in fields_by_id(ht, "account", "upsert")

    changed = [{"ACCOUNT_ID": "a1", "COMPANY": "Acme Corp", "PLAN": None},
               {"ACCOUNT_ID": "a5", "COMPANY": "Hooli", "SEATS": 40},
               {"ACCOUNT_ID": "a2", "COMPANY": "Globex", "HEALTH": "excellent"}]
    result = ht.call("change", idColumn="ACCOUNT_ID", configuration=ACCOUNTS, rows=changed)
    assert result["rejectedRows"] == [{"id": "a2", "reason": "health_score: expected a number, "
                                                     "got 'excellent' (field type NUMBER)"}]
    a1 = fresh(db, Account, tenant, "a1")
    assert (a1.name, a1.traits) == ("Acme Corp", {"seats": 12, "health_score": 0.9})
    assert fresh(db, Account, tenant, "a5").name == "Hooli"  # upsert: change creates too

    removed = [{"ACCOUNT_ID": "a1"}, {"ACCOUNT_ID": "never-seen"}, {"COMPANY": "no id"}]
    result = ht.call("remove", idColumn="ACCOUNT_ID", configuration=ACCOUNTS, rows=removed)
    assert result["rejectedRows"] == [{"id": None, "reason": "account_id: required"}]
    assert fresh(db, Account, tenant, "a1").archived_at is not None
    result = ht.call("remove", idColumn="ACCOUNT_ID", rows=[{"ACCOUNT_ID": "a5"}],
                     configuration={**ACCOUNTS, "removeAction": "delete"})
    assert result == {"rejectedRows": []} and fresh(db, Account, tenant, "a5") is None
    # A removed account that comes back is restored.
    ht.call("add", idColumn="ACCOUNT_ID", configuration=ACCOUNTS, rows=rows[:1])
    assert fresh(db, Account, tenant, "a1").archived_at is None

    log = db.session.scalars(sa.select(IngestLog).order_by(IngestLog.received_at)).all()
    assert [(e.protocol, e.operation, e.rows_received, e.rows_rejected) for e in log] == [
        ("hightouch", "upsert", 5, 3), ("hightouch", "upsert", 3, 1),
        ("hightouch", "remove", 3, 1), ("hightouch", "remove", 1, 0),
        ("hightouch", "upsert", 1, 0)]
    assert log[0].payload[0]["IGNORED"] == "not mapped"  # what Hightouch sent, as sent


def test_update_mode_rejects_unknown_records(ht, db, tenant):
    ht.call("add", idColumn="ACCOUNT_ID", configuration=ACCOUNTS,
            rows=[{"ACCOUNT_ID": "a1", "COMPANY": "Acme", "PLAN": "pro"}])
    update = {**ACCOUNTS, "mode": "update", "mappings": [{"from": "PLAN", "to": "plan"}]}
    assert ht.call("validate", configuration=update)["errors"] == []  # no name needed
    result = ht.call("change", idColumn="ACCOUNT_ID", configuration=update,
                     rows=[{"ACCOUNT_ID": "a1", "PLAN": "enterprise"},
                           {"ACCOUNT_ID": "ghost", "PLAN": "free"}])
    assert result["rejectedRows"] == [{"id": "ghost", "reason": "no account with account_id ghost"}]
    a1 = fresh(db, Account, tenant, "a1")
    assert (a1.name, a1.traits["plan"]) == ("Acme", "enterprise")
    assert fresh(db, Account, tenant, "ghost") is None


def test_user_sync_life_cycle_matched_on_email(ht, db, tenant):
    assert ht.call("validate", configuration=USERS)["errors"] == []
    rows = [{"user_email": "ada@acme.io", "uid": "u1", "user_fn": "Ada", "org": "a1",
             "user_ltv": 10},
            {"user_email": "not-an-email", "uid": "u2", "user_fn": "Bob"},
            {"user_email": "cy@acme.io", "user_fn": "Cy"},
            {"user_email": "dee@acme.io", "uid": "u4", "user_ltv": 2.5}]
    result = ht.call("add", idColumn="user_email", configuration=USERS, rows=rows)
    assert result["rejectedRows"] == [
        {"id": "not-an-email", "reason": "email: not a valid email address: 'not-an-email'"},
        {"id": "cy@acme.io", "reason": "user_id: required"}]
    u1 = fresh(db, User, tenant, "u1")
    assert (u1.email, u1.account_id, u1.traits) == ("ada@acme.io", "a1",
                                                     {"first_name": "Ada", "ltv": 10})
    assert fresh(db, User, tenant, "u4").traits == {"ltv": 2.5}

    result = ht.call("change", idColumn="user_email", configuration=USERS, rows=[
        {"user_email": "ada@acme.io", "uid": "u1", "user_fn": "Ada L.", "org": "a2"},
        {"user_email": "dee@acme.io", "uid": "u4", "user_ltv": "lots"}])
    assert result["rejectedRows"] == [
        {"id": "dee@acme.io", "reason": "ltv: expected a number, got 'lots' (field type NUMBER)"}]
    u1 = fresh(db, User, tenant, "u1")
    assert (u1.account_id, u1.traits["first_name"]) == ("a2", "Ada L.")

    result = ht.call("remove", idColumn="user_email",
                     configuration={**USERS, "removeAction": "delete"},
                     rows=[{"user_email": "ada@acme.io", "uid": "u1"}])
    assert result == {"rejectedRows": []} and fresh(db, User, tenant, "u1") is None
    assert fresh(db, User, tenant, "u4") is not None


def test_custom_fields_are_refused_when_the_sync_turns_creation_off(ht, db, tenant):
    closed = {**USERS, "createFields": False}
    with pytest.raises(RpcFailed) as failed:
        ht.call("add", idColumn="user_email", configuration=closed,
                rows=[{"user_email": "ada@acme.io", "uid": "u1", "user_ltv": 1}])
    assert failed.value.error.code == -32602
    assert "'ltv' is not a Correlated field" in failed.value.error.message
    assert failed.value.error.data["errors"] == ht.call("validate", configuration=closed)["errors"]
    assert fresh(db, User, tenant, "u1") is None
    refused = db.session.scalars(sa.select(IngestLog)).one()  # the dashboard shows it too
    assert (refused.protocol, refused.object, refused.operation) == ("hightouch", "user", "upsert")
    assert (refused.rows_received, refused.rows_rejected) == (1, 1)
    assert "'ltv' is not a Correlated field" in refused.error and refused.payload[0]["uid"] == "u1"
    # An existing custom field is fine with creation off.
    db.session.add(Field(workspace_id=tenant.id, object="user", key="ltv", label="LTV",
                         type="NUMBER"))
    db.session.commit()
    result = ht.call("add", idColumn="user_email", configuration=closed,
                     rows=[{"user_email": "ada@acme.io", "uid": "u1", "user_ltv": 1}])
    assert result == {"rejectedRows": []} and fresh(db, User, tenant, "u1").traits == {"ltv": 1}


def test_event_sync_life_cycle_with_a_fixed_event_name(ht, db, tenant):
    assert ht.call("validate", configuration=EVENTS)["errors"] == []
    assert ht.call("behavior", configuration=EVENTS)["operations"] == {
        "add": True, "change": False, "remove": True}
    rows = [{"event_key": "e1", "happened_at": "2026-05-01T10:00:00Z", "who": "u1", "pages": 3},
            {"event_key": "e2", "happened_at": 1777629600, "who": "u1", "org": "a1"},
            {"event_key": "e3", "happened_at": "yesterday-ish", "who": "u2"},
            {"event_key": "e4", "happened_at": "2026-05-01T11:00:00Z"},
            {"event_key": "e1", "happened_at": "2026-05-01T10:00:00Z", "who": "u1", "pages": 3}]
    result = ht.call("add", idColumn="event_key", configuration=EVENTS, rows=rows)
    assert result["rejectedRows"] == [
        {"id": "e3", "reason": "timestamp: expected ISO 8601 or epoch seconds/milliseconds, "
                               "got 'yesterday-ish'"},
        {"id": "e4", "reason": "user_id: required"}]
    stored = db.session.scalars(sa.select(Event).order_by(Event.event_id)).all()
    assert [(e.event_id, e.event, e.user_id, e.account_id) for e in stored] == [
        ("e1", "Report Viewed", "u1", None), ("e2", "Report Viewed", "u1", "a1")]
    assert stored[0].properties == {"page_count": 3}
    # The same rows again: stored once, nothing rejected.
    assert ht.call("add", idColumn="event_key", configuration=EVENTS, rows=rows[:2]) == {
        "rejectedRows": []}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == 2
    # A column mapped to Event Name wins over the fixed name.
    named = {**EVENTS, "mappings": EVENTS["mappings"] + [{"from": "what", "to": "event"}]}
    ht.call("add", idColumn="event_key", configuration=named, rows=[
        {"event_key": "e5", "what": "Signed In", "happened_at": 1777629600, "who": "u1"}])
    db.session.rollback()
    assert db.session.get(Event, (tenant.id, "e5")).event == "Signed In"

    result = ht.call("remove", idColumn="event_key", configuration=EVENTS,
                     rows=[{"event_key": "e1"}, {"happened_at": "2026-05-01T10:00:00Z"}])
    assert result["rejectedRows"] == [
        {"id": None, "reason": "event_id: required to remove an event"}]
    db.session.rollback()
    assert sorted(db.session.scalars(sa.select(Event.event_id))) == ["e2", "e5"]


def test_a_database_error_is_an_internal_error_and_stores_nothing(ht, db, tenant):
    run_ddl(db, refuse_account(db, "Doomed"))
    try:
        with pytest.raises(RpcFailed) as failed:
            ht.call("add", idColumn="ACCOUNT_ID", configuration=ACCOUNTS, rows=[
                {"ACCOUNT_ID": "a1", "COMPANY": "Fine"}, {"ACCOUNT_ID": "a2", "COMPANY": "Doomed"}])
        error = failed.value.error
        assert error.code == -32603 and "send it again" in error.message
        assert "refused" in error.data
        assert fresh(db, Account, tenant, "a1") is None
        log = db.session.scalars(sa.select(IngestLog)).one()
        assert "refused" in log.error and log.rows_rejected == 2
    finally:
        run_ddl(db, drop_refusal(db))



def test_several_data_calls_in_one_batch_request(ht, db, tenant):
    response = ht.post([
        request("add", id=1, params={"idColumn": "ACCOUNT_ID", "configuration": ACCOUNTS,
                                     "rows": [{"ACCOUNT_ID": "a1", "COMPANY": "Acme"}]}),
        request("add", id=2, params={"idColumn": "user_email", "configuration": USERS,
                                     "rows": [{"user_email": "ada@acme.io", "uid": "u1",
                                               "org": "a1"}, {"user_email": "x@acme.io"}]}),
    ])
    first, second = parse(response.json())
    assert first.result == {"rejectedRows": []}
    assert second.result == {"rejectedRows": [{"id": "x@acme.io", "reason": "user_id: required"}]}
    assert fresh(db, Account, tenant, "a1").name == "Acme"
    assert fresh(db, User, tenant, "u1").account_id == "a1"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IngestLog)) == 2


# --- each call applies the configuration it is sent (what behavior answers for it) ------------

def test_behavior_called_as_the_spec_shows_has_no_body(ht):
    """The spec: "behavior has no request body"; the sync is unknown then, so every operation
    some sync uses is asked for, and each data call applies its own configuration."""
    response = ht.post({"jsonrpc": "2.0", "method": "behavior", "id": "b1"})
    assert response.json() == {"jsonrpc": "2.0", "id": "b1", "result": {
        "batchSize": 100, "operations": {"add": True, "change": True, "remove": True},
        "skipInitialRun": False}}


def test_remove_on_an_event_sync_keeping_removed_events_deletes_nothing(ht, db, tenant):
    keep = {**EVENTS, "deleteRemovedEvents": False}
    assert ht.call("behavior", configuration=keep)["operations"]["remove"] is False
    rows = [{"event_key": "e1", "happened_at": "2026-05-01T10:00:00Z", "who": "u1"},
            {"event_key": "e2", "happened_at": "2026-05-01T11:00:00Z", "who": "u1"}]
    assert ht.call("add", idColumn="event_key", configuration=keep, rows=rows) == {
        "rejectedRows": []}
    result = ht.call("remove", idColumn="event_key", configuration=keep, rows=rows)
    reason = ("not removed: this sync keeps events that leave the model; turn on 'Delete events "
              "that leave the model' to delete them")
    assert result == {"rejectedRows": [{"id": "e1", "reason": reason},
                                       {"id": "e2", "reason": reason}]}
    db.session.rollback()
    assert sorted(db.session.scalars(sa.select(Event.event_id))) == ["e1", "e2"]
    log = db.session.scalars(sa.select(IngestLog).order_by(IngestLog.received_at.desc())).first()
    assert (log.object, log.operation, log.rows_received, log.rows_rejected) == \
        ("event", "remove", 2, 2)
    assert log.error == reason and log.payload == rows  # the dashboard shows why
    # The same rows with deletion on: deleted.
    assert ht.call("remove", idColumn="event_key", configuration=EVENTS, rows=rows[:1]) == {
        "rejectedRows": []}
    db.session.rollback()
    assert list(db.session.scalars(sa.select(Event.event_id))) == ["e2"]


def test_change_on_an_event_sync_changes_nothing(ht, db, tenant):
    ht.call("add", idColumn="event_key", configuration=EVENTS,
            rows=[{"event_key": "e1", "happened_at": "2026-05-01T10:00:00Z", "who": "u1"}])
    result = ht.call("change", idColumn="event_key", configuration=EVENTS, rows=[
        {"event_key": "e1", "happened_at": "2026-05-01T10:00:00Z", "who": "u9"},
        {"event_key": "e7", "happened_at": "2026-05-01T12:00:00Z", "who": "u1"}])
    reason = "not changed: events are immutable once stored, so a changed row is not applied"
    assert result == {"rejectedRows": [{"id": "e1", "reason": reason},
                                       {"id": "e7", "reason": reason}]}
    db.session.rollback()
    assert [(e.event_id, e.user_id) for e in db.session.scalars(sa.select(Event))] == [
        ("e1", "u1")]


def test_remove_on_an_update_mode_user_sync_archives_nobody(ht, db, tenant):
    ht.call("add", idColumn="user_email", configuration=USERS,
            rows=[{"user_email": "ada@acme.io", "uid": "u1", "org": "a1"}])
    update = {**USERS, "mode": "update", "removeAction": "delete"}
    assert ht.call("behavior", configuration=update)["operations"]["remove"] is False
    result = ht.call("remove", idColumn="user_email", configuration=update,
                     rows=[{"user_email": "ada@acme.io", "uid": "u1"}])
    assert result == {"rejectedRows": [{"id": "ada@acme.io", "reason": (
        "not removed: Update syncs never archive or delete users (another sync may own them); "
        "use an Upsert sync to remove users that leave the model")}]}
    u1 = fresh(db, User, tenant, "u1")
    assert u1 is not None and u1.archived_at is None
    # Update-mode account syncs likewise; an upsert sync archives.
    ht.call("add", idColumn="ACCOUNT_ID", configuration=ACCOUNTS,
            rows=[{"ACCOUNT_ID": "a1", "COMPANY": "Acme"}])
    refused = ht.call("remove", idColumn="ACCOUNT_ID", rows=[{"ACCOUNT_ID": "a1"}],
                      configuration={**ACCOUNTS, "mode": "update"})
    assert refused["rejectedRows"][0]["reason"].startswith(
        "not removed: Update syncs never archive or delete accounts")
    assert fresh(db, Account, tenant, "a1").archived_at is None
    assert ht.call("remove", idColumn="ACCOUNT_ID", rows=[{"ACCOUNT_ID": "a1"}],
                   configuration=ACCOUNTS) == {"rejectedRows": []}
    assert fresh(db, Account, tenant, "a1").archived_at is not None
