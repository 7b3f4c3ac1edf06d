"""Issue #18 on the page: one change rule, plural nouns, drops that say what they rank by,
an account's users paged. Through the Flask test client, on SQLite and PostgreSQL."""
from __future__ import annotations

import re

from correlated.ingest.engine import ingest
from correlated.web.formatting import change_figure

from .test_dashboard import admin, ago, fresh_g_per_request, seed, seeded, text  # noqa: F401


def test_one_rule_for_change_figures():
    assert change_figure(0, 0).kind == "none"
    assert change_figure(5, 0).text == "new"
    assert change_figure(pct=float("nan")).text == "new"  # pandas turns None into NaN
    assert change_figure(pct=None).text == "new"
    assert change_figure(100, 100).text == "0%" and change_figure(1001, 1000).text == "0%"
    assert change_figure(3, 2).text == "▲ 50%" and change_figure(1, 4).text == "▼ 75%"


def test_an_event_new_in_this_period_reads_new_on_every_page(seeded):
    # report_created: once 3 days ago, nothing in the 30 days before.
    names = text(seeded.get("/events")).split('id="event-names"')[1].split("</ul>")[0]
    item = names.split(">report_created</span>")[1].split("</li>")[0]
    assert ">new<" in item and "0%" not in item
    header = text(seeded.get("/events?event=report_created")).split('class="stat-row"')[1]
    assert ">new<" in header.split("</div>")[0]
    account = text(seeded.get("/accounts/acme-1")).split("event-metrics")[1].split("</table>")[0]
    row = account.split(">report_created</a>")[1].split("</tr>")[0]
    assert ">new<" in row


def test_nouns_agree_with_their_counts(db, tenant, seeded):
    ingest(db.session, tenant.workspace, "account", "upsert",
           [{"account_id": "solo", "name": "Solo", "plan": "pro"}])
    html = text(seeded.get("/accounts/solo"))
    assert "1 field<" in html and "1 fields" not in html  # plan only
    html = text(seeded.get("/accounts?q=solo"))
    assert "1 account<" in html
    html = text(seeded.get("/"))
    assert "4 accounts and 3 users in this workspace" in html


def test_biggest_drops_say_what_they_rank_by_and_switch(db, tenant, seeded):
    # big-5 loses 30 of 100 (30%), small-6 loses 9 of 10 (90%).
    ingest(db.session, tenant.workspace, "account", "upsert", [
        {"account_id": "big-5", "name": "Big Co"}, {"account_id": "small-6", "name": "Small Co"}])
    ingest(db.session, tenant.workspace, "user", "upsert", [
        {"user_id": "b1", "email": "b@big.io", "account_id": "big-5"},
        {"user_id": "s1", "email": "s@small.io", "account_id": "small-6"}])
    # (a property apiece: identical events are one event, de-duplicated)
    events = [{"event": "e", "user_id": "b1", "timestamp": ago(40), "n": n} for n in range(100)]
    events += [{"event": "e", "user_id": "b1", "timestamp": ago(4), "n": n} for n in range(70)]
    events += [{"event": "e", "user_id": "s1", "timestamp": ago(40), "n": n} for n in range(10)]
    events += [{"event": "e", "user_id": "s1", "timestamp": ago(4)}]
    assert not ingest(db.session, tenant.workspace, "event", "insert", events).rejected

    def dropped(query: str) -> tuple[str, list[str]]:
        html = text(seeded.get("/" + query))
        card = html.split('id="drops"')[1]
        return card.split("</span></span>")[0], re.findall(r'">([^<]+)</a></td>', card.split(
            "</table>")[0])

    hint, names = dropped("")
    assert "ranked by events lost" in hint and names[:2] == ["Big Co", "Small Co"]
    hint, names = dropped("?drops=percent")
    assert "ranked by percent lost" in hint and names.index("Small Co") < names.index("Big Co")
    assert 'href="/?drops=percent#drops"' in hint


def test_an_accounts_users_are_paged_most_active_first(db, tenant, seeded):
    ingest(db.session, tenant.workspace, "user", "upsert", [
        {"user_id": f"p{i:02d}", "email": f"p{i:02d}@acme.io", "account_id": "acme-1"}
        for i in range(22)])
    events = [{"event": "e", "user_id": f"p{i:02d}", "timestamp": ago(1), "n": n}
              for i in range(22) for n in range(i)]  # p21 is the most active
    assert not ingest(db.session, tenant.workspace, "event", "insert", events).rejected

    def users(query: str = "") -> tuple[list[str], str]:
        html = text(seeded.get("/accounts/acme-1" + query))
        table = html.split('id="account-users"')[1].split("</table>")[0]
        return re.findall(r">([\w.]+@acme\.io)<", table), html

    first, html = users()
    assert len(first) == 10 and first[:2] == ["p21@acme.io", "p20@acme.io"]
    pages = html.split('id="account-users-pages"')[1]
    assert "1–10 of 24 users" in pages and "Page 1 of 3" in pages
    link = "/users?field=account_id&amp;op=eq&amp;value=acme-1&amp;sort=events_30d&amp;dir=desc"
    assert link in html
    third, html = users("?users_page=3")
    assert len(third) == 4 and "21–24 of 24 users" in html
    assert not set(first) & set(third)


def test_a_user_known_only_from_events_is_shown_as_not_synced_yet(db, tenant, seeded):
    assert not ingest(db.session, tenant.workspace, "event", "insert", [
        {"event": "sign_in", "user_id": "ghost-7", "timestamp": ago(1)},
        {"event": "report_created", "user_id": "ghost-7", "account_id": "acme-1",
         "timestamp": ago(0)}]).rejected
    response = seeded.get("/users/ghost-7")
    assert response.status_code == 200
    html = text(response)
    assert 'id="not-synced"' in html and "not synced yet" in html
    timeline = html.split('id="timeline"')[1].split("</ul>")[0]
    assert "sign_in" in timeline and "report_created" in timeline
    assert ">Acme Corp</a>" in html  # the account its events name
    events = text(seeded.get("/events?event=sign_in")).split("latest-events")[1]
    assert 'href="/users/ghost-7"' in events  # and the link to it goes somewhere
    assert seeded.get("/users/never-seen").status_code == 404
    assert 'id="not-synced"' not in text(seeded.get("/users/u1"))
