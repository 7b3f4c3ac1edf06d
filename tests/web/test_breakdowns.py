"""Issue #18 items 7 and 12: breakdowns by numbers and dates in readable ranges (the same
buckets as the accounts list filter), text by top values; the list filter's fields and default.
Through the Flask test client, on SQLite and PostgreSQL."""
from __future__ import annotations

import re

import pandas as pd

from correlated.analytics import buckets
from correlated.ingest.engine import ingest

from .test_dashboard import admin, ago, fresh_g_per_request, rows_of, seed, seeded, text  # noqa: F401

ARRS = [0, 0, 3_600, 5_400, 7_900, 12_000, 18_500, 24_000, 31_000, 42_700, 55_000, 68_000,
        96_300, 120_000, 196_300.0, 266_100, 410_000, 730_000]


def test_number_ranges_have_nice_bounds_and_at_most_ten_buckets():
    ranges = buckets.number_buckets(pd.Series(ARRS), "currency:USD")
    assert [b.label for b in ranges] == [
        "$0–2.5k", "$2.5k–5k", "$5k–10k", "$10k–25k", "$25k–50k", "$50k–100k", "$100k–250k",
        "$250k–500k", "$500k–1M"]
    assert ranges[6].filter_value == "100000..250000"
    wide = buckets.number_buckets(pd.Series([1, 10 ** 12, *range(2, 40)]), None)
    assert len(wide) <= buckets.MAX_BUCKETS
    few = buckets.number_buckets(pd.Series([1, 2, 2, 3]), None)
    assert [b.label for b in few] == ["1", "2", "3"]  # a few values: each its own bucket
    scores = buckets.number_buckets(pd.Series(range(50, 101, 3)), "percent")
    assert [b.label for b in scores][:2] == ["50–60%", "60–70%"]


def test_dates_are_broken_down_by_month_quarter_or_year():
    months = buckets.date_buckets(pd.Series(["2026-03-04", "2026-07-30"]))
    assert [b.label for b in months] == ["Mar 2026", "Apr 2026", "May 2026", "Jun 2026",
                                         "Jul 2026"]
    quarters = buckets.date_buckets(pd.Series(["2026-12-01", "2027-11-20T10:00:00Z"]))
    assert [b.label for b in quarters] == ["Q4 2026", "Q1 2027", "Q2 2027", "Q3 2027",
                                           "Q4 2027"]
    years = buckets.date_buckets(pd.Series(["2010-05-01", "2026-01-01"]))
    assert len(years) <= buckets.MAX_BUCKETS and years[0].label == "2010–2011"


def many_accounts(db, workspace) -> None:
    ingest(db.session, workspace, "account", "upsert", [
        {"account_id": f"m{i:02d}", "name": f"Money {i:02d}", "arr": arr,
         "renewal_date": f"2027-{i % 12 + 1:02d}-15", "plan": f"plan{i % 14}"}
        for i, arr in enumerate(ARRS)])
    ingest(db.session, workspace, "user", "upsert", [
        {"user_id": f"mu{i:02d}", "email": f"mu{i:02d}@money.io", "account_id": f"m{i:02d}"}
        for i in range(len(ARRS))])
    result = ingest(db.session, workspace, "event", "insert", [
        {"event": "sign_in", "user_id": f"mu{i:02d}", "timestamp": ago(2), "n": n}
        for i in range(len(ARRS)) for n in range(i + 1)])
    assert not result.rejected


def breakdown_rows(html: str) -> list[tuple[str, str]]:
    table = html.split('id="breakdown-table"')[1].split("</table>")[0]
    return re.findall(r'<td class="clip">([^<]+)</td><td class="num">([\d,]+)</td>', table)


def test_events_broken_down_by_arr_in_currency_ranges_that_filter_the_accounts_list(
        db, tenant, seeded):
    many_accounts(db, tenant.workspace)
    html = text(seeded.get("/events?event=sign_in&by=arr"))
    rows = breakdown_rows(html)
    labels = [label for label, _events in rows]
    assert 1 < len(labels) <= 10 and "(other values)" not in labels
    assert all(re.fullmatch(r"\$[\d.]+k?–[\d.]+[kM]", label) for label in labels), labels
    assert "196300" not in html.split('id="breakdown-table"')[1].split("</table>")[0]
    assert labels[0] == "$0–2.5k" and labels[-1] == "$500k–1M"  # ranges in their order
    # m13 (120,000: 14 events) and m14 (196,300: 15); acme-1's 250,000 is the next range's.
    assert dict(rows)["$100k–250k"] == "29"
    link = re.search(r'href="(/accounts\?field=arr&amp;op=between&amp;value=100000..250000)"',
                     html).group(1).replace("&amp;", "&")
    listed = text(seeded.get(link))
    assert sorted(rows_of(listed)) == ["Money 13", "Money 14"]
    assert "ARR $100k–250k" in listed  # the chip reads as the bucket
    # The list filter offers the same ranges.
    offered = re.search(r'<datalist id="ranges-\d+" data-for="arr">(.*?)</datalist>', listed,
                        re.S).group(1)
    assert '<option value="100000..250000" label="$100k–250k">' in offered


def test_events_broken_down_by_a_date_and_by_top_text_values(db, tenant, seeded):
    many_accounts(db, tenant.workspace)
    labels = [label for label, _ in
              breakdown_rows(text(seeded.get("/events?event=sign_in&by=renewal_date")))]
    assert labels and all(re.fullmatch(r"Q[1-4] 2027|\(not set\)", label) for label in labels)
    plans = [label for label, _ in breakdown_rows(text(seeded.get("/events?event=sign_in&by=plan")))]
    assert len(plans) == 12 and plans[-1] == "(other values)"  # 16 plans: top 11, the rest


def test_the_filter_offers_core_fields_first_and_filters_by_them(seeded):
    html = text(seeded.get("/accounts"))
    select = html.split('name="field"')[1].split("</select>")[0]
    options = re.findall(r'<option value="([^"]+)"( selected)?>', select)
    assert options[0] == ("name", " selected") and ("account_id", "") in options
    assert [v for v, _ in options].index("plan") < [v for v, _ in options].index("events_30d")
    assert rows_of(text(seeded.get("/accounts?field=name&op=contains&value=gamma"))) == \
        ["gamma Health"]
    assert rows_of(text(seeded.get("/accounts?field=account_id&op=eq&value=beta-2"))) == \
        ["Beta Labs"]
    users = text(seeded.get("/users")).split('name="field"')[1].split("</select>")[0]
    assert re.findall(r'<option value="([^"]+)"', users)[:3] == ["email", "user_id", "account_id"]
