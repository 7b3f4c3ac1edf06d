"""The dashboards in a real headless Chromium (Debian's package) with the real CSP, through
Playwright, against the app behind a real HTTP server.

To refresh the README's screenshots (a fuller demo workspace, one database):
    CORRELATED_SCREENSHOTS=docs/screenshots pytest tests/test_browser.py -k sqlite
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from correlated.auth import verify_key
from correlated.demo import load_demo
from correlated.ingest.engine import ingest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = os.environ.get("CORRELATED_SCREENSHOTS")


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
    context = browser.new_context(viewport={"width": 1440, "height": 900})
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
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def test_overview_and_account_pages_render_charts_under_the_csp(page, live_server):
    charts_rendered(page, "actives-chart", "events-chart")
    assert page.locator(".kpi-value").count() == 3
    shoot(page, "overview")
    page.click("#top-accounts a >> nth=0")
    page.wait_for_url(re.compile(r"/accounts/acc_\d+"))
    charts_rendered(page, "account-events-chart", "account-wau-chart")
    assert page.locator("#account-users tbody tr").count() > 0
    shoot(page, "account")
    page.goto(f"{live_server}/accounts/acc_0001")
    charts_rendered(page, "account-events-chart")
    cell = page.locator("#dimensions tr", has_text="Industry").locator("td")
    assert cell.inner_text() == "<script>window.pwned = 1</script>"  # shown as text
    assert page.evaluate("window.pwned") is None  # and never run
    page.goto(f"{live_server}/events")
    charts_rendered(page, "all-events-chart", "event-trend-chart", "event-breakdown-chart")
    shoot(page, "events")
    page.select_option("select[name=by]", "industry")  # autosubmits through static JS
    page.wait_for_url(re.compile(r"by=industry"))
    assert "<script>window.pwned = 1</script>" in page.locator("#breakdown-table").inner_text()
    assert page.errors == []


def test_filter_sort_and_paginate_the_accounts_list(page, live_server):
    page.click("nav >> text=Accounts")
    page.wait_for_url(f"{live_server}/accounts")
    rows = page.locator("#accounts-table tbody tr").count()
    assert rows == (25 if SCREENSHOTS else 10)
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
    events = [int(v.replace(",", "")) for v in
              page.locator("#accounts-table tbody tr td:nth-child(9)").all_inner_texts()]
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
