"""Issue #18 item 16: the ingest log on /connections is paged and filtered, lists every request
(a refused 422 too), says what a request did (a duplicate retry stored nothing new) and numbers
rows from 1. Real requests through the app, on SQLite and PostgreSQL."""
from __future__ import annotations

import re

from correlated.protocols.connections import create_connection

from .test_connections_page import admin, page, send_rows  # noqa: F401

EVENT = {"event": "Signed In", "user_id": "u1", "timestamp": "2026-03-01T10:00:00Z",
         "event_id": "e1"}


def log_rows(html: str) -> list[str]:
    body = html.split('id="ingest-log-table"')[1].split("<tbody>")[1].split("</tbody>")[0]
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


def outcome_of(row: str) -> str:
    return re.search(r'<td class="outcome[^"]*">([^<]*)</td>', row).group(1)


def test_a_duplicate_retry_says_nothing_new_and_rows_count_from_one(admin, tenant):
    assert send_rows(admin, "/hightouch/webhook", [EVENT], tenant.headers).status_code == 201
    retry = send_rows(admin, "/hightouch/webhook", [EVENT], tenant.headers)
    assert retry.status_code == 204
    newest, first = log_rows(page(admin, "/connections"))
    assert outcome_of(first) == "1 created"
    assert outcome_of(newest) == "1 duplicate, nothing new"  # not "stored 1"
    entry = re.search(r'href="/connections/log/([0-9a-f]+)"', newest).group(1)
    detail = page(admin, f"/connections/log/{entry}")
    assert "1 duplicate, nothing new" in detail and ">nothing new<" in detail
    send_rows(admin, "/hightouch/webhook", [{"account_id": "a1", "name": "Acme"},
                                            {"user_id": "u9", "email": "not an email"}],
              tenant.headers)
    html = page(admin, "/connections")
    assert "row 2 · u9:" in html and "row 1 · u9" not in html  # the second row of the request
    entry = re.search(r'href="/connections/log/([0-9a-f]+)"', log_rows(html)[0]).group(1)
    assert re.search(r'<tr><td class="num">2</td><td class="clip">u9</td>',
                     page(admin, f"/connections/log/{entry}"))


def test_a_refused_request_is_listed_with_its_reason(admin, db, tenant):
    hook = create_connection(db.session, tenant.id, "Rows under data", "account")
    hook.mapping = {"wrapper": "data.rows", "id_field": "id", "name_field": "name"}
    hook.enabled, hook.enforce_auth = True, False
    db.session.commit()
    response = send_rows(admin, f"/webhooks/{hook.id}", {"rows": [{"id": "a1"}]}, {})
    assert response.status_code == 422 and "wrapper path" in response.get_data(as_text=True)
    (row,) = log_rows(page(admin, "/connections"))
    assert outcome_of(row) == "refused, nothing stored"
    assert "wrapper path &#39;data.rows&#39;: not found in the payload" in row
    assert "connection" in row and "account" in row
    (only,) = log_rows(page(admin, "/connections?status=refused"))
    assert only == row
    assert "No requests match these filters" in page(admin, "/connections?status=stored")


def test_the_log_is_paged_and_filtered(admin, tenant):
    for n in range(27):
        send_rows(admin, "/hightouch/webhook", [{**EVENT, "event_id": f"e{n}"}], tenant.headers)
    send_rows(admin, "/hightouch/webhook", [{"account_id": "a1", "name": "Acme"},
                                            {"user_id": "u9", "email": "bad"}], tenant.headers)
    html = page(admin, "/connections")
    assert len(log_rows(html)) == 25 and "28 requests" in html
    pages = html.split('id="log-pages"')[1]
    assert "1–25 of 28" in pages and "Page 1 of 2" in pages
    older = page(admin, "/connections?log_page=2")
    assert len(log_rows(older)) == 3 and "26–28 of 28" in older
    assert len(log_rows(page(admin, "/connections?rejected=1"))) == 1
    assert len(log_rows(page(admin, "/connections?status=partial"))) == 1
    assert "27 requests" in page(admin, "/connections?object=event&protocol=webhook")
    assert len(log_rows(page(admin, "/connections?object=mixed"))) == 1
    filtered = page(admin, "/connections?object=event&log_page=2")
    assert 'href="/connections?object=event#ingest-log"' in filtered  # the filter stays on
    assert "No requests on this protocol yet" in page(admin, "/connections?protocol=census")
