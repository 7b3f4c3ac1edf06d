"""CSV formula injection (issue #13, 13): one writer for the REST exports and the dashboard
lists; no cell, header or value, reaches a spreadsheet as a formula; numbers stay numbers."""
from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest

from correlated import csvexport

from .pages import signed_in

FORMULAS = ["=HYPERLINK(\"http://evil\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
            "\t=1+1", "\r=1+1"]
FORMULA_KEYS = ["=cmd", "+cmd", "-cmd", "@cmd", "\t=cmd", "\r=cmd"]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_formula_becomes_text(text):
    assert csvexport.cell(text) == "'" + text


@pytest.mark.parametrize("value, written", [
    (266100.0, 266100), (12.5, 12.5), (-3, -3), ("-5", "-5"), ("+1.5e3", "+1.5e3"),
    ("plain", "plain"), (None, ""), (True, "true"), ({"a": 1}, '{"a":1}'),
    (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05+00:00"),
])
def test_numbers_stay_numbers_and_values_keep_their_meaning(value, written):
    assert csvexport.cell(value) == written


def table(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def no_formulas(rows: list[list[str]]) -> None:
    cells = [c for row in rows for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")
                or (c[:1] == "-" and not csvexport.NUMBER.fullmatch(c))]


def send_formulas(client, tenant) -> None:
    """Formulas as values and as field keys (CSV headers), through the REST API."""
    rows = [{"account_id": f"acc-{n}", "name": text, "plan": text, key: text, "arr": 266100}
            for n, (text, key) in enumerate(zip(FORMULAS, FORMULA_KEYS))]
    assert client.post("/api/v1/accounts", headers=tenant.headers, json=rows).status_code == 200


def test_the_rest_export_writes_no_formula_in_any_cell(client, tenant):
    send_formulas(client, tenant)
    response = client.get("/api/v1/accounts?format=csv", headers=tenant.headers)
    rows = table(response.get_data(as_text=True))
    no_formulas(rows)
    header = rows[0]
    assert {"'" + key for key in FORMULA_KEYS} <= set(header)
    assert rows[1][header.index("name")] == "'=HYPERLINK(\"http://evil\")"
    assert rows[1][header.index("arr")] == "266100"


def test_the_dashboard_export_writes_no_formula_in_any_cell(app, client, tenant, fresh_g):
    send_formulas(client, tenant)
    browser, _token = signed_in(app, tenant.admin_email, tenant.admin_password)
    columns = "&".join(f"col={key}" for key in ("plan", "arr"))
    response = browser.get(f"/accounts?format=csv&{columns}")
    rows = table(response.get_data(as_text=True))
    no_formulas(rows)
    assert len(rows) == 1 + len(FORMULAS)
    by_id = {row[0]: row for row in rows[1:]}
    assert by_id["acc-4"][1] == "'\t=1+1" and "'\r=1+1" in by_id["acc-5"]
    assert "266100" in by_id["acc-0"]
