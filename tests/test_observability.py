"""Structured request logs and Prometheus /metrics, in one process and under gunicorn -w 2."""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from correlated import ROOT, create_app
from correlated.extensions import db as _db
from correlated.ingest.engine import ingest
from correlated.observability import JsonFormatter
from tests.servers import Gunicorn, free_port as _free_port, wait_for
from tests.test_cli import _read_until
from .web.test_dashboard import login



def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of a /metrics body."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(metrics: dict, name: str, **labels) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return samples(response.get_data(as_text=True))


def rows(metrics: dict, protocol: str, obj: str, outcome: str) -> float:
    return value(metrics, "correlated_ingest_rows_total", protocol=protocol, object=obj,
                 outcome=outcome)


# --- one process ----------------------------------------------------------------------------

def test_rest_ingest_shows_in_metrics(client, tenant):
    before = scrape(client)
    response = client.post("/api/v1/accounts", headers=tenant.headers, json=[
        {"account_id": "a1", "name": "Acme"}, {"account_id": "a2", "name": "Globex"},
        {"account_id": "a3", "name": "Initech", "created_at": "not a date"}])
    assert response.status_code == 200 and response.get_json()["accepted"] == 2
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("correlated_http_requests_total", blueprint="api", endpoint="api.write",
                 method="POST", status="200") == 1
    assert delta("correlated_ingest_rows_total", protocol="api", object="account",
                 outcome="accepted") == 2
    assert delta("correlated_ingest_rows_total", protocol="api", object="account",
                 outcome="rejected") == 1
    assert delta("correlated_ingest_duration_seconds_count", protocol="api") == 1
    assert delta("correlated_http_request_duration_seconds_count", blueprint="api") == 1


def test_engine_calls_are_counted_whoever_makes_them(client, db, workspace):
    before = scrape(client)
    ingest(db.session, workspace, "user", "upsert",
           [{"user_id": "u1", "email": "ada@acme.io"}, {"user_id": "u2", "email": "nope"}],
           protocol="engine-test")
    after = scrape(client)
    assert rows(after, "engine-test", "user", "accepted") - \
        rows(before, "engine-test", "user", "accepted") == 1
    assert rows(after, "engine-test", "user", "rejected") - \
        rows(before, "engine-test", "user", "rejected") == 1
    assert value(after, "correlated_ingest_duration_seconds_count", protocol="engine-test") == \
        value(before, "correlated_ingest_duration_seconds_count", protocol="engine-test") + 1


def test_rows_an_adapter_refuses_before_the_engine_are_counted_too(client, tenant):
    """A Segment track without userId never reaches the engine; it is still a rejected row."""
    before = scrape(client)
    basic = base64.b64encode(f"{tenant.key}:".encode()).decode()
    response = client.post("/v1/batch", headers={"Authorization": f"Basic {basic}"}, json={
        "batch": [{"type": "track", "event": "Signed Up", "userId": "u1", "messageId": "m1"},
                  {"type": "track", "event": "Signed Up", "anonymousId": "x", "messageId": "m2"}]})
    assert response.status_code == 200
    after = scrape(client)
    assert rows(after, "segment", "event", "accepted") - rows(before, "segment", "event",
                                                              "accepted") == 1
    assert rows(after, "segment", "event", "rejected") - rows(before, "segment", "event",
                                                              "rejected") == 1


def test_each_request_is_one_structured_log_line(client, tenant, caplog):
    caplog.set_level(logging.INFO, logger="correlated.request")
    client.get("/no/such/page")  # first: the fixture's app context (and g) spans requests
    client.post(f"/hightouch/webhook?object=account&token={tenant.key}",
                json=[{"account_id": "a1", "name": "Acme"}])

    missing, write = [r for r in caplog.records if r.name == "correlated.request"]
    line = json.loads(JsonFormatter().format(write))
    assert line["level"] == "info" and line["logger"] == "correlated.request"
    assert {k: line[k] for k in ("event", "method", "path", "query", "status", "workspace_id",
                                 "protocol", "endpoint")} == {
        "event": "request", "method": "POST", "path": "/hightouch/webhook",
        "query": "object=account&token=%5Bredacted%5D", "status": 201, "workspace_id": tenant.id,
        "protocol": "webhooks", "endpoint": "webhooks.hightouch_webhook"}
    assert line["duration_ms"] > 0 and line["pid"] == os.getpid()
    assert (missing.fields["status"], missing.fields["endpoint"], missing.fields["workspace_id"]) \
        == (404, "unmatched", None)
    assert tenant.key not in caplog.text


def test_a_member_page_logs_the_members_workspace(client, tenant, caplog):
    caplog.set_level(logging.INFO, logger="correlated.request")
    login(client, tenant.admin_email, tenant.admin_password)
    client.get("/")
    last = [r for r in caplog.records if r.name == "correlated.request"][-1]
    assert (last.fields["method"], last.fields["path"], last.fields["workspace_id"]) == \
        ("GET", "/", tenant.id)


def test_metrics_can_require_a_token(database_url):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "x",
                      "METRICS_TOKEN": "scrape-secret"})
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert ok.status_code == 200 and b"correlated_http_requests_total" in ok.data
    with app.app_context():
        _db.engine.dispose()


# --- gunicorn, two workers ------------------------------------------------------------------

def _cli(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "correlated", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


class Server(Gunicorn):
    """`gunicorn -w 2 wsgi:app` on a migrated SQLite file, with multiprocess metrics."""

    def __init__(self, folder: Path):
        metrics = folder / "metrics"
        metrics.mkdir()
        self.access_log = folder / "access.log"
        super().__init__(f"sqlite:///{folder / 'db.sqlite'}", folder, workers=2,
                         args=("--access-logfile", str(self.access_log)),
                         PROMETHEUS_MULTIPROC_DIR=str(metrics))
        self.error_log = self.log  # gunicorn's own log and our JSON lines
        _cli(self.env, "db", "upgrade")
        _cli(self.env, "workspace", "create", "acme", "--admin-email", "a@acme.io",
             "--admin-password", "long enough password")
        self.key = _cli(self.env, "keys", "create", "--workspace", "acme").split()[-1]

    def request_lines(self) -> list[dict]:
        lines = [json.loads(line) for line in self.error_log.read_text().splitlines()
                 if line.startswith("{")]
        return [line for line in lines if line.get("event") == "request"]


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("gunicorn"))
    server.start()
    yield server
    server.stop()


def _post_accounts(server: Server, numbers: range) -> list[int]:
    def post(n: int) -> int:
        body = {"account_id": f"a{n}", "name": f"Account {n}"}
        return requests.post(server.base + "/api/v1/accounts", json=body, timeout=30,
                             headers={"Authorization": f"Bearer {server.key}"}).status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(post, numbers))


def test_metrics_sum_every_gunicorn_worker(gunicorn):
    sent = 0
    while sent < 400:  # until both workers have answered some (almost always the first round)
        assert _post_accounts(gunicorn, range(sent, sent + 40)) == [200] * 40
        sent += 40
        time.sleep(0.2)  # the log lines are written after the responses
        per_worker = {}
        for line in gunicorn.request_lines():
            if line["endpoint"] == "api.write":
                per_worker[line["pid"]] = per_worker.get(line["pid"], 0) + 1
        if len(per_worker) == 2:
            break
    assert len(per_worker) == 2 and sum(per_worker.values()) == sent, per_worker

    for _ in range(4):  # whichever worker answers the scrape, it reports every worker's counts
        metrics = samples(requests.get(gunicorn.base + "/metrics", timeout=10).text)
        assert value(metrics, "correlated_http_requests_total", blueprint="api",
                     endpoint="api.write", method="POST", status="200") == sent
        assert rows(metrics, "api", "account", "accepted") == sent
        assert value(metrics, "correlated_ingest_duration_seconds_count", protocol="api") == sent


def test_gunicorn_logs_never_show_a_key(gunicorn):
    """?token=, ?census_authentication=, Bearer and Basic (Segment's write key): none is logged."""
    key, base = gunicorn.key, gunicorn.base
    requests.post(f"{base}/hightouch/webhook?token={key}", json=[{"account_id": "w1",
                                                                  "name": "W"}], timeout=10)
    requests.post(f"{base}/census/rpc?census_authentication={key}", timeout=10,
                  json={"jsonrpc": "2.0", "method": "test_connection", "params": {}, "id": 1})
    requests.post(f"{base}/v1/batch", auth=(key, ""), timeout=10, json={
        "writeKey": key, "batch": [{"type": "track", "event": "E", "userId": "u1"}]})
    requests.get(f"{base}/api/v1/accounts?api_key={key}&password=hunter2", timeout=10)
    time.sleep(0.2)

    access = gunicorn.access_log.read_text()
    errors = gunicorn.error_log.read_text()
    assert access.count("POST /hightouch/webhook") == 1 and "POST /v1/batch" in access
    for text in (access, errors):
        assert key not in text and "hunter2" not in text
    assert re.search(r"token=\[redacted\]", access)  # gunicorn's default format keeps the query


def test_serve_clears_old_metrics_and_keeps_queries_out_of_its_access_log(tmp_path):
    """`correlated serve` runs gunicorn with the multiprocess hooks and a query-free access log."""
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "counter_1.db").write_bytes(b"left over from a previous run")
    port = _free_port()
    env = {**os.environ, "CORRELATED_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
           "CORRELATED_SECRET_KEY": "serve-test", "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    process = subprocess.Popen(
        [sys.executable, "-m", "correlated", "serve", "--port", str(port), "--workers", "2"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base, output = f"http://127.0.0.1:{port}", []
    try:
        output.append(_read_until(process, "API key:"))
        key = re.search(r"API key:\s+(cor_\S+)", output[0]).group(1)
        assert wait_for(base + "/healthz")
        response = requests.post(f"{base}/hightouch/webhook?object=account&token={key}",
                                 json=[{"account_id": "a1", "name": "Acme"}], timeout=10)
        assert response.status_code == 201
        scraped = samples(requests.get(base + "/metrics", timeout=10).text)
        assert rows(scraped, "webhook", "account", "accepted") == 1
    finally:
        process.send_signal(signal.SIGTERM)
        output.append(process.communicate(timeout=30)[0])
    text = "".join(output)
    assert '"POST /hightouch/webhook HTTP/1.1" 201' in text  # the access line, without its query
    assert key not in text.split(key, 1)[1]  # printed once at first run, never logged

