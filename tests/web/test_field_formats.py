"""Issue #18 items 8 and 15: a field's display format (number, percent, currency) set on
/fields or through the REST API and used on the pages; CSV numbers as numbers; one rule for
field keys in the API and the dashboard. On SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import io

from correlated.analytics.display import format_number
from correlated.ingest.engine import ingest
from correlated.models import Field

from .test_dashboard import admin, fresh_g_per_request, post, seed, seeded, text  # noqa: F401


def test_display_formats():
    assert format_number(196300.0, "currency:USD") == "$196,300"
    assert format_number(-5.5, "currency:EUR") == "-€5.5"
    assert format_number(1200, "currency:CHF") == "CHF 1,200"
    assert format_number(250000, "currency:USD", compact=True) == "$250k"
    assert format_number(12.5, "percent") == "12.5%"
    assert format_number(1234.5678, "number") == "1,234.57"


def test_money_fields_show_as_currency_and_formats_are_set_on_the_fields_page(db, tenant,
                                                                                seeded):
    ingest(db.session, tenant.workspace, "account", "update",
           [{"account_id": "acme-1", "arr": 266100.0}])
    assert "$266,100" in text(seeded.get("/accounts/acme-1")).split('id="dimensions"')[1]
    listed = text(seeded.get("/accounts?q=acme")).split('id="accounts-table"')[1]
    assert '<td class="num">$266,100</td>' in listed
    fields = text(seeded.get("/fields")).split('id="fields-table"')[1]
    arr = fields.split("<code>arr</code>")[1].split("</tr>")[0]
    assert '<option value="currency:USD" selected>' in arr
    response = post(seeded, "/fields/account/health_score/format",
                    {"display_format": "percent"}, "/fields")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Field, (tenant.id, "account", "health_score")).display_format == \
        "percent"
    assert "87%" in text(seeded.get("/accounts/acme-1")).split('id="dimensions"')[1]
    post(seeded, "/fields/account/health_score/format", {"display_format": "bitcoin"}, "/fields")
    assert "The display format must be number, percent or currency" in text(seeded.get("/fields"))


def test_csv_writes_integers_as_integers_and_rounds_derived_figures(db, tenant, seeded):
    ingest(db.session, tenant.workspace, "account", "update",
           [{"account_id": "acme-1", "arr": 266100.0}])
    table = list(csv.DictReader(io.StringIO(text(seeded.get("/accounts?format=csv&q=acme")))))
    assert table[0]["ARR"] == "266100"  # raw in CSV, not "$266,100" and not "266100.0"
    trend = table[0]["Trend"]
    assert trend == "" or len(trend.partition(".")[2]) <= 2
    api = seeded.get("/api/v1/accounts?format=csv", headers=tenant.headers)
    rows = list(csv.DictReader(io.StringIO(text(api))))
    assert "266100" in [r.get("arr") for r in rows]


def test_the_fields_api_reads_and_sets_display_formats(tenant, seeded):
    fields = seeded.get("/api/v1/fields?object=account", headers=tenant.headers).get_json()
    assert {f["key"]: f["format"] for f in fields["data"]}["arr"] == "currency:USD"
    created = seeded.post("/api/v1/fields", headers=tenant.headers, json={
        "object": "account", "key": "nrr", "type": "NUMBER", "format": "percent"})
    assert created.status_code == 201 and created.get_json()["format"] == "percent"
    bad = seeded.post("/api/v1/fields", headers=tenant.headers, json={
        "object": "account", "key": "x", "type": "NUMBER", "format": "currency:usd"})
    assert bad.status_code == 422 and "currency:<ISO code>" in text(bad)


def test_one_rule_for_field_keys_in_the_api_and_the_dashboard(db, tenant, seeded):
    api = seeded.post("/api/v1/fields", headers=tenant.headers,
                      json={"object": "account", "key": "a__b", "type": "STRING"})
    assert api.status_code == 422 and "must not contain '__'" in text(api)
    post(seeded, "/fields", {"object": "account", "key": "a__b", "label": "A B",
                             "type": "STRING"}, "/fields")
    assert "The key must not contain &#39;__&#39;" in text(seeded.get("/fields"))
    assert db.session.get(Field, (tenant.id, "account", "a__b")) is None
    # What the API accepts, the dashboard accepts too (a hyphen, a space inside).
    post(seeded, "/fields", {"object": "account", "key": "plan-tier 2", "label": "Tier",
                             "type": "STRING"}, "/fields")
    assert db.session.get(Field, (tenant.id, "account", "plan-tier 2")) is not None
