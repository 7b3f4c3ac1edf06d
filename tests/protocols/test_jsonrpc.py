"""The JSON-RPC 2.0 envelope both connectors share, over real HTTP: error codes, batches,
notifications, and the HTTP-level refusals (401, 405, 413, 415)."""
import base64

import pytest
import requests
import sqlalchemy as sa
from jsonrpcclient import Error, Ok, notification, parse, request

from correlated.auth import revoke_keys
from correlated.models import Account, IngestLog

from ..rpc_client import Client

PATHS = {"hightouch": "/hightouch/rpc", "census": "/census/rpc"}
ACCOUNT_SYNC = {"object": "account", "mode": "upsert",
                "identifierMapping": [{"from": "id", "to": "account_id"}],
                "mappings": [{"from": "company", "to": "name"}]}


@pytest.fixture(params=list(PATHS))
def endpoint(request, live_server, tenant):
    """(kind, url) of each connector."""
    return request.param, live_server + PATHS[request.param]


@pytest.fixture
def rpc(endpoint, tenant):
    return Client(endpoint[1], tenant.key)


def post_raw(url, key, data, content_type="application/json"):
    return requests.post(url, data=data, timeout=10, headers={
        "Authorization": f"Bearer {key}", "Content-Type": content_type})


def test_a_call_answers_with_its_id_and_http_200(rpc):
    response = rpc.post({"jsonrpc": "2.0", "id": "abc-1", "method": "list_objects", "params": {}})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] == "abc-1" and "objects" in body["result"]
    assert "error" not in body


def test_parse_error_is_32700_with_http_400(endpoint, tenant):
    for data in (b'{"jsonrpc": "2.0", "method": ', b"", b"\xff\xfe not json"):
        response = post_raw(endpoint[1], tenant.key, data)
        assert response.status_code == 400
        body = response.json()
        assert body["id"] is None and body["error"]["code"] == -32700
        assert body["error"]["message"] == "Parse Error"


INVALID = [
    {"jsonrpc": "1.0", "id": 1, "method": "list_objects"},
    {"id": 1, "method": "list_objects"},
    {"jsonrpc": "2.0", "id": 1, "method": 42},
    {"jsonrpc": "2.0", "id": 1, "method": "list_objects", "params": "everything"},
    {"jsonrpc": "2.0", "id": {"nested": True}, "method": "list_objects"},
    "list_objects",
]


def test_invalid_request_is_32600(rpc):
    for bad in INVALID:
        response = rpc.post(bad)
        assert response.status_code == 200
        parsed = parse(response.json())
        assert isinstance(parsed, Error) and parsed.code == -32600, bad
        assert parsed.id == (1 if isinstance(bad, dict) and bad.get("id") == 1 else None)


def test_unknown_method_is_32601(rpc):
    error = rpc.error("drop_everything", table="accounts")
    assert error.code == -32601 and error.message == "Method Not Found: no method 'drop_everything'"
    assert "drop_everything" in error.data


def test_missing_or_malformed_params_are_32602(rpc, endpoint):
    if endpoint[0] == "hightouch":
        calls = [("list_modes", {}), ("list_modes", {"object": "invoice"}),
                 ("add", {"idColumn": "id", "configuration": ACCOUNT_SYNC}),
                 ("add", {"idColumn": "id", "configuration": ACCOUNT_SYNC, "rows": "a1"}),
                 ("validate", {"configuration": ["object", "account"]})]
    else:
        calls = [("list_fields", {}), ("list_fields", {"object": {"object_api_name": "invoice"}}),
                 ("sync_batch", {"records": []}),
                 ("sync_batch", {"sync_plan": {"object": "account", "operation": "merge"},
                                 "records": []}),
                 ("sync_batch", {"sync_plan": {"object": "account", "operation": "upsert"},
                                 "records": {"account_id": "a1"}})]
    for method, params in calls:
        error = rpc.error(method, **params)
        assert error.code == -32602 and error.message.startswith("Invalid Params: "), error
        assert error.data


def test_unknown_named_params_are_ignored_and_positional_params_work(rpc, endpoint):
    assert "objects" in rpc.call("list_objects", trace_id="x-1", workspace="someone else")
    method, args = (("list_modes", ["user"]) if endpoint[0] == "hightouch"
                    else ("supported_operations", [{"object_api_name": "user"}]))
    response = rpc.post({"jsonrpc": "2.0", "id": 7, "method": method, "params": args})
    assert isinstance(parse(response.json()), Ok)


def test_too_many_rows_in_one_call_is_32602(app, rpc, endpoint):
    app.config["MAX_ROWS_PER_REQUEST"] = 3
    rows = [{"id": f"a{i}", "company": "C", "account_id": f"a{i}", "name": "C"} for i in range(4)]
    if endpoint[0] == "hightouch":
        error = rpc.error("add", idColumn="id", configuration=ACCOUNT_SYNC, rows=rows)
    else:
        plan = {"object": {"object_api_name": "account"}, "operation": "upsert"}
        error = rpc.error("sync_batch", records=rows, sync_plan=plan)
    assert error.code == -32602 and "the limit is 3" in error.message


def test_batch_is_answered_as_an_array_in_order_without_notifications(rpc, endpoint):
    second = ("list_modes", {"object": "user"}) if endpoint[0] == "hightouch" \
        else ("supported_operations", {"object": {"object_api_name": "user"}})
    batch = [request("list_objects", id=1), request(second[0], params=second[1], id=2),
             notification("list_objects"), request("nope", id=3), {"jsonrpc": "2.0"}]
    response = rpc.post(batch)
    assert response.status_code == 200
    answers = list(parse(response.json()))
    assert [a.id for a in answers] == [1, 2, 3, None]
    assert isinstance(answers[0], Ok) and "objects" in answers[0].result
    assert isinstance(answers[1], Ok)
    assert (answers[2].code, answers[3].code) == (-32601, -32600)


def test_an_empty_batch_is_one_invalid_request(rpc):
    body = rpc.post([]).json()
    assert isinstance(body, dict) and body["error"]["code"] == -32600 and body["id"] is None


def test_notifications_get_204_and_still_run(db, rpc, endpoint, tenant):
    if endpoint[0] == "hightouch":
        params = {"idColumn": "id", "configuration": ACCOUNT_SYNC,
                  "rows": [{"id": "n1", "company": "Notified Inc"}]}
        response = rpc.notify("add", **params)
    else:
        params = {"sync_plan": {"object": {"object_api_name": "account"}, "operation": "upsert"},
                  "records": [{"account_id": "n1", "name": "Notified Inc"}]}
        response = rpc.notify("sync_batch", **params)
    assert response.status_code == 204 and response.content == b""
    assert db.session.get(Account, (tenant.id, "n1")).name == "Notified Inc"
    # A batch made only of notifications (even failing ones) answers nothing either.
    response = rpc.post([notification("list_objects"), notification("no_such_method")])
    assert response.status_code == 204 and response.content == b""


def test_results_and_errors_both_travel_with_http_200(rpc):
    assert rpc.post(request("no_such_method")).status_code == 200
    assert rpc.post(request("list_objects")).status_code == 200


def test_a_missing_or_wrong_key_is_http_401(endpoint, db):
    for headers in ({}, {"Authorization": "Bearer cor_wrong-key-wrong-key-000000000000000000"},
                    {"Authorization": "Basic " + base64.b64encode(b"cor_nope:").decode()}):
        response = requests.post(endpoint[1], json=request("list_objects"), headers=headers,
                                 timeout=10)
        assert response.status_code == 401
        assert "API key" in response.json()["error"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IngestLog)) == 0


def test_basic_auth_and_revoked_keys(endpoint, tenant, db):
    token = base64.b64encode(f"{tenant.key}:".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    assert requests.post(endpoint[1], json=request("list_objects"), headers=headers,
                         timeout=10).status_code == 200
    revoke_keys(db.session, tenant.key[:12])
    db.session.commit()
    assert requests.post(endpoint[1], json=request("list_objects"), headers=headers,
                         timeout=10).status_code == 401


def test_other_http_methods_are_405(endpoint, tenant):
    for method in ("get", "put", "delete", "patch"):
        response = requests.request(method, endpoint[1], timeout=10,
                                    headers={"Authorization": f"Bearer {tenant.key}"})
        assert response.status_code == 405
        assert "POST" in response.headers["Allow"]


def test_a_body_that_is_not_declared_json_is_415(endpoint, tenant):
    data = b'{"jsonrpc":"2.0","id":1,"method":"list_objects"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        assert post_raw(endpoint[1], tenant.key, data, content_type).status_code == 415


def test_a_body_over_the_size_limit_is_413(app, endpoint, tenant):
    app.config["MAX_CONTENT_LENGTH"] = 2048
    data = ('{"jsonrpc":"2.0","id":1,"method":"list_objects","params":{"pad":"%s"}}'
            % ("x" * 4096)).encode()
    assert post_raw(endpoint[1], tenant.key, data).status_code == 413


def test_workspaces_are_isolated(db, live_server, tenant, other_tenant):
    mine, theirs = (Client(live_server + PATHS["census"], t.key) for t in (tenant, other_tenant))
    plan = {"object": {"object_api_name": "account"}, "operation": "upsert"}
    mine.call("sync_batch", sync_plan=plan, records=[{"account_id": "a1", "name": "Mine"}])
    theirs.call("sync_batch", sync_plan=plan, records=[{"account_id": "a1", "name": "Theirs"}])
    assert db.session.get(Account, (tenant.id, "a1")).name == "Mine"
    assert db.session.get(Account, (other_tenant.id, "a1")).name == "Theirs"


def test_params_of_the_wrong_shape_are_32602_not_a_crash(rpc, endpoint):
    for value in (["account"], {"nested": "object"}, 3, None):
        if endpoint[0] == "hightouch":
            errors = [rpc.error("list_modes", object=value),
                      rpc.error("add", idColumn="id", rows=[{"id": 1}],
                                configuration={"object": value, "mode": value})]
        else:
            errors = [rpc.error("list_fields", object={"object_api_name": value}),
                      rpc.error("sync_batch", records=[{"account_id": 1}],
                                sync_plan={"object": value, "operation": value})]
        assert [e.code for e in errors] == [-32602, -32602], (value, errors)
