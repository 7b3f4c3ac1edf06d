"""Segment's analytics-next (from npm, tests/js/package-lock.json) in headless Chromium, on a
page served from another origin than correlated, sending to the browser paths.

The session fixture runs `npm ci` in tests/js when the locked version is not installed yet.
"""
from __future__ import annotations

import fcntl
import json
import subprocess
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from correlated.models import Account, Event, IngestLog, User
from correlated.protocols.segment_browser import issue_browser_key

from ..servers import free_port

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
JS = Path(__file__).resolve().parent.parent / "js"
PACKAGE = JS / "node_modules" / "@segment" / "analytics-next"

PAGE = """<!doctype html><html><head><title>Shop</title>
<script src="/index.js"></script></head><body><h1>Pricing</h1></body></html>"""

# The page's calls: loading with inline settings (no CDN), then the calls a site makes.
SCRIPT = """async ({writeKey, apiHost, batching}) => {
  const integration = {apiKey: writeKey, apiHost, protocol: "http"};
  if (batching) integration.deliveryStrategy = {strategy: "batching",
                                                config: {size: 4, timeout: 300}};
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
    {writeKey, cdnSettings: {integrations: {"Segment.io": integration}}});
  await analytics.identify("u1", {email: "ada@acme.io", firstName: "Ada"});
  await analytics.group("acme", {name: "Acme", plan: "pro"});
  await analytics.track("Report Exported", {format: "csv"});
  await analytics.page("Docs", "Pricing");
  return analytics.user().id();
}"""


def locked_version() -> str:
    lock = json.loads((JS / "package-lock.json").read_text())
    return lock["packages"]["node_modules/@segment/analytics-next"]["version"]


@pytest.fixture(scope="session")
def analytics_next() -> Path:
    """The UMD build of the locked analytics-next, installed with `npm ci` if need be (one
    test process at a time: the lock file guards node_modules)."""
    with open(JS / ".npm-ci.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        manifest = PACKAGE / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text())["version"] != locked_version():
            npm_ci()
    return PACKAGE / "dist" / "umd"


def npm_ci() -> None:
    try:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=JS,
                       check=True, capture_output=True, text=True, timeout=240)
    except FileNotFoundError:
        pytest.fail("npm is missing: apt-get install -y npm")
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"npm ci in {JS} failed:\n{exc.stderr[-2000:]}")


@pytest.fixture
def shop(analytics_next):
    """A web page on its own origin (another port) that loads analytics-next."""
    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/shop":
                body = PAGE.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:  # index.js and the chunks it loads from the page's own path
                super().do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()),
                                 partial(Handler, directory=str(analytics_next)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def visit(chromium, shop, live_server):
    """Open the shop page in a fresh browser profile and run the calls; the user ID it kept."""
    contexts = []

    def run(write_key: str, batching: bool = False):
        context = chromium.new_context()
        contexts.append(context)
        tab = context.new_page()
        tab.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
        tab.goto(f"{shop}/shop")
        return tab.evaluate(SCRIPT, {"writeKey": write_key, "batching": batching,
                                     "apiHost": live_server.removeprefix("http://") + "/v1"})

    console: list[str] = []
    run.console = console

    yield run
    for context in contexts:
        context.close()


def allow(db, tenant, *origins: str) -> str:
    key = issue_browser_key(db.session, tenant.workspace)
    tenant.workspace.allowed_origins = list(origins)
    db.session.commit()
    return key


def rows(db, model):
    db.session.rollback()  # the live server wrote in another thread
    return db.session.scalars(sa.select(model)).all()


def wait_for(predicate, timeout: float = 15):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.parametrize("batching", [False, True], ids=["one-request-per-call", "batching"])
def test_analytics_next_on_an_allowed_origin_stores_every_call(db, tenant, shop, visit,
                                                              batching):
    key = allow(db, tenant, shop)
    assert visit(key, batching) == "u1"
    wait_for(lambda: len(rows(db, Event)) == 2)

    (user,) = rows(db, User)
    assert (user.user_id, user.email, user.account_id) == ("u1", "ada@acme.io", "acme")
    assert user.traits == {"first_name": "Ada"}
    (account,) = rows(db, Account)
    assert (account.name, account.traits) == ("Acme", {"plan": "pro"})
    events = {e.event: e for e in rows(db, Event)}
    assert set(events) == {"Report Exported", "Page Viewed: Pricing"}
    assert events["Report Exported"].properties == {"format": "csv"}
    page = events["Page Viewed: Pricing"].properties
    assert (page["category"], page["path"], page["url"]) == ("Docs", "/shop", f"{shop}/shop")
    logs = rows(db, IngestLog)
    assert sum(log.rows_rejected for log in logs) == 0
    assert {log.payload.get("writeKey") for log in logs} == {"[redacted]"}
    # One request a call on /v1/i, /v1/g, /v1/t, /v1/p; batched, fewer requests on /v1/b.
    assert (len(logs) < 4) if batching else (len(logs) == 4)


def test_a_page_on_an_origin_not_listed_sends_nothing(db, tenant, visit, live_server):
    """analytics-next sends the key as HTTP Basic too, so Chromium asks first (a preflight),
    and no workspace allows this origin: nothing is sent at all."""
    key = allow(db, tenant, "https://shop.example.com")
    assert visit(key) == "u1"  # the SDK keeps what it could not send, to retry it later
    assert rows(db, User) == [] and rows(db, Event) == [] and rows(db, IngestLog) == []
    blocked = [m for m in visit.console if "blocked by CORS policy" in m]
    assert {m.split("fetch at '")[1].split("'")[0] for m in blocked} == {
        f"{live_server}/v1/{path}" for path in "igtp"}
