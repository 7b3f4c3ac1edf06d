"""The scores pages in a real headless Chromium with the real CSP (the fixtures of
tests/web/test_browser.py): the demo's Health and Fit on every account, a weight changed in
the editor moving the distribution, saved, and the accounts list sorted by the score; the
account page's breakdown adding up to the score shown."""
from __future__ import annotations

import pytest

from ..web.test_browser import browser, charts_rendered, page  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


def column(tab, label: str) -> list[str]:
    """The data-score values of the list column headed `label`."""
    headers = [t.strip() for t in tab.locator("#accounts-table thead th").all_text_contents()]
    index = headers.index(label) + 1
    return tab.eval_on_selector_all(f"#accounts-table tbody tr td:nth-child({index})",
                                    "cells => cells.map(c => c.getAttribute('data-score'))")


def test_demo_scores_editor_preview_save_and_sort(page, live_server):  # noqa: F811
    page.goto(f"{live_server}/accounts")
    for name in ("Health", "Fit"):
        values = column(page, name)
        assert len(values) == 10 and all(v not in (None, "") for v in values), (name, values)
    page.goto(f"{live_server}/scores")
    page.click("#scores a:text-is('Fit')")
    charts_rendered(page, "score-histogram")
    page.wait_for_function("document.getElementById('score-histogram').dataset.counts")
    before = page.get_attribute("#score-histogram", "data-counts")
    assert sum(map(int, before.split(","))) == 10
    # A weight changed on the slider's number: the distribution is drawn again.
    page.fill('.input-row[data-index="0"] [data-part="weight-number"]', "8")
    page.wait_for_function(
        "before => document.getElementById('score-histogram').dataset.counts !== before",
        arg=before)
    assert page.input_value('.input-row[data-index="0"] [data-part="weight"]') == "8"
    page.click("button:text-is('Save score')")
    page.wait_for_selector("text=scored every account again")
    page.goto(f"{live_server}/accounts")
    page.click("#accounts-table thead th a:text-is('Fit')")
    page.wait_for_url("**sort=score*")
    shown = [float(v) for v in column(page, "Fit")]
    assert shown == sorted(shown, reverse=True)
    page.click("#accounts-table tbody tr:first-child td.name a")
    charts_rendered(page, "score-breakdown-1", "score-breakdown-2")
    for card in page.locator(".score-card").all():
        points = [float(t) for t in card.locator("table.breakdown tbody td:last-child")
                  .all_text_contents()]
        total = float(card.locator("table.breakdown tfoot th.num").text_content())
        assert round(sum(points), 1) == total
    assert page.errors == []
