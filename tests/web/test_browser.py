"""The dashboards in a real headless Chromium (Debian's package) with the real CSP, through
Playwright, against the app behind a real HTTP server.

To refresh docs/screenshots/ (a fuller demo workspace, one database; each page at 1440x900
as NAME.png and at a 1280x800 laptop as NAME-1280.png):
    CORRELATED_SCREENSHOTS=docs/screenshots pytest tests/web/test_browser.py -k sqlite
"""
from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from correlated.auth import verify_key
from correlated.demo import load_demo
from correlated.ingest.engine import ingest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = os.environ.get("CORRELATED_SCREENSHOTS")
WIDE, LAPTOP = {"width": 1440, "height": 900}, {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server, db, tenant):
    """A signed-in page on a workspace holding the demo data set, collecting browser errors."""
    # Screenshots for the README want a fuller workspace; the checks work on any size.
    load_demo(db.session, tenant.workspace, accounts=60 if SCREENSHOTS else 10,
              days=120 if SCREENSHOTS else 60)
    result = ingest(db.session, tenant.workspace, "account", "update", [
        {"account_id": "acc_0001", "industry": "<script>window.pwned = 1</script>"}])
    assert result.updated == 1
    context = browser.new_context(viewport=WIDE)
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    tab.on("console", lambda msg: tab.errors.append(msg.text) if msg.type == "error" else None)
    tab.goto(f"{live_server}/")
    assert "/login" in tab.url
    tab.fill("input[name=email]", tenant.admin_email)
    tab.fill("input[name=password]", tenant.admin_password)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{live_server}/")
    yield tab
    context.close()


def charts_rendered(tab, *ids: str) -> None:
    for chart_id in ids:
        tab.wait_for_selector(f"#{chart_id} svg.main-svg g.trace", timeout=15_000)
        marks = tab.locator(f"#{chart_id} g.trace path")
        assert marks.count() > 0, chart_id


def shoot(tab, name: str) -> None:
    """The page at 1440x900 (NAME.png) and at 1280x800 (NAME-1280.png), when asked for."""
    if not SCREENSHOTS:
        return
    Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    for size, suffix in ((WIDE, ""), (LAPTOP, "-1280")):
        tab.set_viewport_size(size)
        tab.wait_for_timeout(400)  # plotly redraws charts on resize
        tab.screenshot(path=str(Path(SCREENSHOTS) / f"{name}{suffix}.png"), full_page=True)
    tab.set_viewport_size(WIDE)
    tab.wait_for_timeout(200)


def tick_labels(tab, chart_id: str) -> list[list[str]]:
    """The y tick labels of a chart, one list per y axis."""
    return tab.eval_on_selector_all(
        f"#{chart_id} g.yaxislayer-above",
        "layers => layers.map(l => [...l.querySelectorAll('.ytick text')].map(t => t.textContent))")


def whole_and_distinct(labels: list[str]) -> bool:
    numbers = [label.replace(",", "").replace("k", "000") for label in labels]
    return all(re.fullmatch(r"\d+", n) for n in numbers) and len(set(numbers)) == len(numbers)


def send(base: str, path: str, body, headers: dict | None = None) -> int:
    """A machine request to the live server; its status code."""
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_overview_and_account_pages_render_charts_under_the_csp(page, live_server):
    charts_rendered(page, "actives-chart", "events-chart")
    assert page.locator(".kpi-value").count() == 3
    # #18 items 1-4: accounts and users on axes of their own, whole-number ticks, the
    # unfinished day marked, titled axes.
    axes = tick_labels(page, "actives-chart")
    assert len(axes) == 2 and all(whole_and_distinct(labels) for labels in axes), axes
    assert page.locator("#actives-chart .annotation-text", has_text="today so far").count() == 1
    assert page.locator("#events-chart .ytitle").text_content() == "Events"
    assert page.locator("#events-chart .xtitle").text_content() == "Day"
    assert page.locator("#drops .hint", has_text="ranked by events lost").count() == 1
    shoot(page, "overview")
    page.click("#drops a:has-text('Percent lost')")  # #18 item 6
    page.wait_for_url(re.compile(r"drops=percent"))
    assert page.locator("#drops .hint", has_text="ranked by percent lost").count() == 1
    page.click("#top-accounts a >> nth=0")
    page.wait_for_url(re.compile(r"/accounts/acc_\d+"))
    charts_rendered(page, "account-events-chart", "account-wau-chart")
    assert page.locator("#account-users tbody tr").count() > 0
    (weekly,) = tick_labels(page, "account-wau-chart")
    assert whole_and_distinct(weekly), weekly
    assert page.locator("#account-wau-chart .legend").count() == 0  # one series, no legend
    assert page.locator("#account-wau-chart .xtitle").text_content() == "Week starting"
    assert page.locator("#account-wau-chart .annotation-text").text_content() == "this week so far"
    assert page.locator("#account-users tbody tr").count() <= 10  # #18 item 11: paged
    shoot(page, "account")
    page.goto(f"{live_server}/accounts/acc_0001")
    charts_rendered(page, "account-events-chart")
    cell = page.locator("#dimensions tr", has_text="Industry").locator("td")
    assert cell.inner_text() == "<script>window.pwned = 1</script>"  # shown as text
    assert page.evaluate("window.pwned") is None  # and never run
    arr = page.locator("#dimensions tr", has_text="ARR").locator("td").inner_text()
    assert arr.startswith("$")  # #18 item 8
    page.goto(f"{live_server}/events")
    charts_rendered(page, "all-events-chart", "event-trend-chart", "event-breakdown-chart")
    page.select_option("select[name=by]", "industry")  # autosubmits through static JS
    page.wait_for_url(re.compile(r"by=industry"))
    assert "<script>window.pwned = 1</script>" in page.locator("#breakdown-table").inner_text()
    page.select_option("select[name=by]", "arr")  # #18 item 7: ranges, not values
    page.wait_for_url(re.compile(r"by=arr"))
    charts_rendered(page, "event-breakdown-chart")
    labels = page.locator("#breakdown-table tbody td.clip").all_inner_texts()
    assert 1 < len(labels) <= 10 and all(re.fullmatch(r"\$[\d.]+k?–[\d.]+[kM]", label)
                                         for label in labels if label != "(not set)"), labels
    shoot(page, "events")
    assert page.errors == []


def test_filter_sort_and_paginate_the_accounts_list(page, live_server):
    page.click("nav >> text=Accounts")
    page.wait_for_url(f"{live_server}/accounts")
    rows = page.locator("#accounts-table tbody tr").count()
    assert rows == (25 if SCREENSHOTS else 10)
    assert page.locator("select[name=field]").input_value() == "name"  # #18 item 12
    value = page.locator("input[name=value]")
    assert value.evaluate("""el => {
        const style = getComputedStyle(el), canvas = document.createElement("canvas");
        const ctx = canvas.getContext("2d"); ctx.font = style.font;
        const room = el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        return ctx.measureText(el.placeholder).width <= room; }""")  # the placeholder fits
    page.select_option("select[name=field]", "arr")  # a number: its ranges, "in range"
    assert page.locator("select[name=op]").input_value() == "between"
    ranges = page.locator(f"datalist#{value.get_attribute('list')} option")
    assert ranges.count() > 1 and ranges.first.get_attribute("label").startswith("$")
    page.select_option("select[name=field]", "name")
    shoot(page, "accounts")
    page.select_option("select[name=field]", "plan")
    page.select_option("select[name=op]", "eq")
    page.fill("input[name=value]", "pro")
    page.click("button:has-text('Add filter')")
    page.wait_for_url(re.compile(r"field=plan"))
    plans = page.locator("#accounts-table tbody tr td:nth-child(2)").all_inner_texts()
    assert plans and set(plans) == {"pro"}
    assert page.locator(".chip", has_text="Plan is pro").count() == 1
    page.click("th a:has-text('Events 30d')")  # metrics sort biggest first
    page.wait_for_url(re.compile(r"sort=events_30d"))
    headers = [t.strip() for t in page.locator("#accounts-table thead th").all_text_contents()]
    at = headers.index("Events 30d") + 1  # the demo's scores are columns too
    events = [int(v.replace(",", "")) for v in
              page.locator(f"#accounts-table tbody tr td:nth-child({at})").all_inner_texts()]
    assert events == sorted(events, reverse=True)
    assert page.locator(".chip", has_text="Plan is pro").count() == 1  # the filter stays
    page.click(".chip a")
    page.wait_for_url(lambda url: "field=plan" not in url)
    assert page.locator("#accounts-table tbody tr").count() == rows
    assert page.errors == []


def test_create_copy_and_revoke_a_key(page, live_server, db, tenant):
    page.goto(f"{live_server}/settings/keys")
    page.fill("#create-key input[name=name]", "Hightouch production")
    page.click("#create-key button[type=submit]")
    secret = page.locator("#new-key-value").inner_text()
    assert secret.startswith("cor_")
    page.click("button[data-copy]")
    page.wait_for_selector("button[data-copy]:has-text('Copied')")
    row = page.locator("#keys-table tr", has_text="Hightouch production")
    assert row.locator(".tag").text_content() == "live"
    assert verify_key(db.session, secret) is not None
    shoot(page, "new-key")
    page.reload()  # #18 item 14: POST-redirect-GET, the key shown once, no second key
    assert page.locator("#new-key-value").count() == 0
    assert page.locator(".flash-info", has_text="shown once").count() == 1
    assert page.locator("#keys-table tr", has_text="Hightouch production").count() == 1
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before revoking
    row.locator("button:has-text('Revoke')").click()
    page.wait_for_selector(".flash-success")
    row = page.locator("#keys-table tr", has_text="Hightouch production")
    assert row.locator(".tag").text_content() == "revoked"
    assert secret not in page.content()
    db.session.rollback()  # end this thread's read snapshot (SQLite WAL) to see the server's write
    assert verify_key(db.session, secret) is None
    assert page.errors == []
    page.click("button[title='Sign out']")
    page.wait_for_url(re.compile(r"/login"))
    page.goto(f"{live_server}/accounts")
    assert "/login" in page.url


def table_fits(tab, table_id: str) -> bool:
    widths = tab.eval_on_selector(f"#{table_id}", "t => { const w = t.closest('.table-wrap');"
                                  " return [w.scrollWidth, w.clientWidth, [...t.querySelectorAll"
                                  "('thead th')].map(th => [th.textContent.trim(), th.offsetWidth])]; }")
    print(table_id, widths)
    return widths[0] <= widths[1] + 1


def test_lists_fit_a_laptop_and_scroll_with_a_cue_and_a_sticky_first_column(page, live_server):
    """#18 item 10, at 1280x800."""
    page.set_viewport_size(LAPTOP)
    for path, table in (("/accounts", "accounts-table"), ("/users", "users-table")):
        page.goto(live_server + path)
        assert table_fits(page, table), path
        assert page.locator("[data-scroll-cue]").is_hidden()
    shoot(page, "users")
    page.set_viewport_size(LAPTOP)
    wide = "&".join(f"col={c}" for c in ("plan", "industry", "employees", "arr", "domain",
                                        "region", "country", "owner"))
    page.goto(f"{live_server}/accounts?{wide}")
    assert not table_fits(page, "accounts-table")
    assert page.locator("[data-scroll-cue]").is_visible()
    first = page.locator("#accounts-table tbody tr >> nth=0").locator("td >> nth=0")
    left = first.bounding_box()["x"]
    page.eval_on_selector("#accounts-table", "t => { t.closest('.table-wrap').scrollLeft = 600; }")
    page.wait_for_timeout(100)
    assert abs(first.bounding_box()["x"] - left) < 1  # the account column stays in view
    last_seen = page.locator("#accounts-table thead th >> nth=-1")
    assert last_seen.bounding_box()["x"] < 1280  # scrolled into reach
    assert page.locator("#accounts-table").evaluate(
        "t => t.closest('.table-wrap').classList.contains('scrolled')")
    shoot(page, "accounts-wide")
    assert page.errors == []


def test_connections_urls_break_only_at_slashes_and_the_log_says_what_happened(
        page, live_server, db, tenant):
    """#18 items 16 and 17: a duplicate retry and a refused request in the log; URLs that
    wrap only after a slash, with copy buttons."""
    from correlated.protocols.connections import create_connection

    event = {"event": "Signed In", "user_id": "u1", "timestamp": "2026-03-01T10:00:00Z",
             "event_id": "retry-1"}
    assert send(live_server, "/hightouch/webhook", [event], tenant.headers) == 201
    assert send(live_server, "/hightouch/webhook", [event], tenant.headers) == 204
    assert send(live_server, "/hightouch/webhook", [
        {"account_id": "acc_0002", "name": "Renamed"}, {"user_id": "x", "email": "nope"}],
        tenant.headers) == 201
    hook = create_connection(db.session, tenant.id, "Warehouse rows", "account")
    hook.mapping, hook.enabled, hook.enforce_auth = {"wrapper": "data.rows"}, True, False
    db.session.commit()
    assert send(live_server, f"/webhooks/{hook.id}", {"rows": []}) == 422
    page.set_viewport_size(LAPTOP)
    page.goto(f"{live_server}/connections")
    parts = page.locator(".secret-url .nobreak")
    assert parts.count() > 10
    assert parts.evaluate_all("ps => ps.every(p => p.getClientRects().length <= 1)")
    page.click("button[data-copy='#url-hightouch-rpc']")
    page.wait_for_selector("button[data-copy='#url-hightouch-rpc']:has-text('Copied')")
    assert page.locator("#url-hightouch-rpc").inner_text() == f"{live_server}/hightouch/rpc"
    outcomes = page.locator("#ingest-log-table td.outcome").all_inner_texts()
    assert outcomes[:3] == ["refused, nothing stored", "1 updated, 1 rejected",
                            "1 duplicate, nothing new"], outcomes
    assert "row 2 · x:" in page.locator("#ingest-log-table").inner_text().replace("\n", " ") \
        or page.locator("#ingest-log-table .reasons li", has_text="row 2").count() == 1
    page.set_viewport_size(WIDE)
    shoot(page, "connections")
    page.select_option("select[name=status]", "refused")
    page.wait_for_url(re.compile(r"status=refused"))
    assert page.locator("#ingest-log-table tbody tr").count() == 1
    assert page.errors == []


def test_fields_formats_and_a_user_not_synced_yet(page, live_server, db, tenant):
    """#18 items 8 and 13."""
    page.goto(f"{live_server}/fields")
    arr = page.locator("#fields-table tr", has_text="arr").locator("select[name=display_format]")
    assert arr.input_value() == "currency:USD"
    shoot(page, "fields")
    assert not ingest(db.session, tenant.workspace, "event", "insert", [
        {"event": "sign_in", "user_id": "trial-user-9", "timestamp": "2026-03-01T10:00:00Z"}
    ]).rejected
    page.goto(f"{live_server}/users/trial-user-9")
    assert page.locator("#not-synced").text_content() == "not synced yet"
    assert page.locator("#timeline", has_text="sign_in").count() == 1
    shoot(page, "user-not-synced")
    assert page.errors == []
