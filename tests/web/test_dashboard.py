"""Dashboard pages through the Flask test client, on SQLite and PostgreSQL: access, scoping,
CSRF, and what each page shows."""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from correlated.auth import add_member, verify_key
from correlated.ingest.engine import ingest
from correlated.models import ApiKey, Field, Member

PAGES = ["/", "/accounts", "/accounts/acme-1", "/users", "/users/u1", "/events", "/fields",
         "/settings/keys", "/settings/members"]


def token_of(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def login(client, email: str, password: str):
    token = token_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def post(client, path: str, data: dict | None = None, form_page: str = "/"):
    """A form post carrying the CSRF token of a page the member has open."""
    token = token_of(client.get(form_page).get_data(as_text=True))
    return client.post(path, data={**(data or {}), "csrf_token": token})


def ago(days: int, hour: int = 12) -> str:
    moment = datetime.now(timezone.utc) - timedelta(days=days)
    return moment.replace(hour=hour, minute=0, second=0, microsecond=0).isoformat()


def seed(db, workspace) -> None:
    """Three live accounts (one with markup in its dimensions), one archived, users, events."""
    ingest(db.session, workspace, "account", "upsert", [
        {"account_id": "acme-1", "name": "Acme Corp", "plan": "enterprise", "employees": 1200,
         "arr": 250000, "industry": "Software", "health_score": 87},
        {"account_id": "beta-2", "name": "Beta Labs", "plan": "starter", "employees": 40,
         "arr": 6000, "industry": "<script>alert('x')</script>"},
        {"account_id": "gamma-3", "name": "gamma Health", "plan": "pro", "employees": 300,
         "arr": 30000, "industry": "Healthcare"},
        {"account_id": "gone-4", "name": "Gone Inc", "plan": "pro"},
    ])
    ingest(db.session, workspace, "account", "remove", [{"account_id": "gone-4"}])
    ingest(db.session, workspace, "user", "upsert", [
        {"user_id": "u1", "email": "ada@acme.io", "account_id": "acme-1", "role": "admin",
         "first_name": "Ada"},
        {"user_id": "u2", "email": "alan@acme.io", "account_id": "acme-1", "role": "analyst"},
        {"user_id": "u3", "email": "bea@beta.io", "account_id": "beta-2", "role": "viewer"},
    ])
    events = [{"event": "sign_in", "user_id": "u1", "timestamp": ago(d)} for d in (0, 1, 2, 10)]
    events += [{"event": "report_created", "user_id": "u2", "timestamp": ago(3),
                "widgets": 4, "title": "<b>Q3</b>"}]
    events += [{"event": "sign_in", "user_id": "u3", "timestamp": ago(d)} for d in (35, 40, 45)]
    events += [{"event": "sign_in", "user_id": "u3", "timestamp": ago(5)}]
    result = ingest(db.session, workspace, "event", "insert", events)
    assert not result.rejected


@pytest.fixture(autouse=True)
def fresh_g_per_request(app):
    """The `app` fixture keeps one app context open, so every test request would share `g`
    (and Flask-Login's cached user). A server gives each request its own: do the same."""
    @app.teardown_request
    def forget(_exc):
        from flask import g
        g.__dict__.clear()


@pytest.fixture
def admin(client, tenant):
    assert login(client, tenant.admin_email, tenant.admin_password).status_code == 302
    return client


@pytest.fixture
def seeded(db, tenant, admin):
    seed(db, tenant.workspace)
    return admin


@pytest.fixture
def member(app, db, tenant):
    """A signed-in member who is not an admin."""
    add_member(db.session, tenant.workspace, "viewer@acme.example", "viewer password 1")
    db.session.commit()
    client = app.test_client()
    assert login(client, "viewer@acme.example", "viewer password 1").status_code == 302
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


# --- access ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PAGES + ["/accounts?format=csv"])
def test_signed_out_visitors_are_sent_to_the_login_page(client, tenant, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_login_wrong_password_then_right_one_returns_to_the_page(client, tenant):
    response = login(client, tenant.admin_email, "wrong")
    assert response.status_code == 401 and "do not match" in text(response)
    assert client.get("/").status_code == 302
    token = token_of(text(client.get("/login?next=/accounts")))
    response = client.post("/login?next=/accounts", data={
        "email": tenant.admin_email.upper(), "password": tenant.admin_password,
        "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/accounts"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/").status_code == 200


def test_login_never_redirects_to_another_site(client, tenant):
    token = token_of(text(client.get("/login")))
    response = client.post("/login?next=//evil.example/x", data={
        "email": tenant.admin_email, "password": tenant.admin_password, "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_login_and_logout_need_the_csrf_token(client, tenant):
    response = client.post("/login", data={"email": tenant.admin_email,
                                           "password": tenant.admin_password})
    assert response.status_code == 400
    assert client.get("/").status_code == 302
    login(client, tenant.admin_email, tenant.admin_password)
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200
    response = post(client, "/logout")
    assert response.status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_navigation_and_no_inline_script(seeded, path):
    response = seeded.get(path)
    assert response.status_code == 200
    html = text(response)
    for label in ("Overview", "Accounts", "Users", "Events", "Fields", "Connections",
                  "API keys", "Members"):
        assert f"<span>{label}</span>" in html
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_empty_workspace_pages_say_what_to_do(admin):
    assert "Connect your warehouse to get started" in text(admin.get("/"))
    assert "No accounts yet" in text(admin.get("/accounts"))
    assert "No users yet" in text(admin.get("/users"))
    assert "No events yet" in text(admin.get("/events"))


# --- workspace scoping ----------------------------------------------------------------------

def test_another_workspaces_records_answer_404_and_never_show(db, client, tenant, other_tenant):
    seed(db, other_tenant.workspace)
    login(client, tenant.admin_email, tenant.admin_password)
    assert client.get("/accounts/acme-1").status_code == 404
    assert client.get("/users/u1").status_code == 404
    assert "Acme Corp" not in text(client.get("/accounts"))
    assert "ada@acme.io" not in text(client.get("/users"))
    assert "sign_in" not in text(client.get("/events"))
    assert "Connect your warehouse" in text(client.get("/"))


def test_archived_accounts_are_hidden(seeded):
    assert seeded.get("/accounts/gone-4").status_code == 404
    assert "Gone Inc" not in text(seeded.get("/accounts"))


# --- overview -------------------------------------------------------------------------------

def test_overview_numbers_and_charts(seeded):
    html = text(seeded.get("/"))
    kpis = re.findall(r'<div class="kpi-value">([\d,]+)</div>', html)
    # active accounts (acme, beta), active users (u1, u2, u3), events (4 + 1 + 1) in 30 days
    assert kpis == ["2", "3", "6"]
    assert 'id="actives-chart-data"' in html and 'id="events-chart-data"' in html
    top = html.split('id="top-accounts"')[1].split("</table>")[0]
    assert top.index("Acme Corp") < top.index("Beta Labs")
    dropped = html.split('id="dropped-accounts"')[1].split("</table>")[0]
    assert "Beta Labs" in dropped and "Acme Corp" not in dropped


# --- accounts list --------------------------------------------------------------------------

def rows_of(html: str, table: str = "accounts-table") -> list[str]:
    body = html.split(f'id="{table}"')[1].split("</tbody>")[0]
    return re.findall(r'<td class="name"><a href="[^"]+">([^<]+)</a>', body)


def test_accounts_search_by_name_or_id(seeded):
    assert rows_of(text(seeded.get("/accounts?q=acme"))) == ["Acme Corp"]
    assert rows_of(text(seeded.get("/accounts?q=TA-2"))) == ["Beta Labs"]
    assert "No accounts match" in text(seeded.get("/accounts?q=nothing-like-this"))


@pytest.mark.parametrize("query, expected", [
    ("field=plan&op=eq&value=Enterprise", ["Acme Corp"]),
    ("field=plan&op=ne&value=enterprise", ["Beta Labs", "gamma Health"]),
    ("field=industry&op=contains&value=health", ["gamma Health"]),
    ("field=employees&op=gt&value=299", ["Acme Corp", "gamma Health"]),
    ("field=arr&op=lt&value=30,000", ["Beta Labs"]),
    ("field=active_users_30d&op=lt&value=2", ["Beta Labs", "gamma Health"]),
    ("field=events_30d&op=gt&value=1&field=plan&op=eq&value=enterprise", ["Acme Corp"]),
    ("field=users&op=eq&value=0", ["gamma Health"]),
])
def test_accounts_filters(seeded, query, expected):
    assert rows_of(text(seeded.get(f"/accounts?{query}"))) == expected


def test_accounts_filter_problems_are_explained_not_fatal(seeded):
    html = text(seeded.get("/accounts?field=employees&op=gt&value=many"))
    assert "is not a number" in html
    assert len(rows_of(html)) == 3
    html = text(seeded.get("/accounts?field=no_such_field&op=eq&value=1"))
    assert "unknown field" in html


@pytest.mark.parametrize("query, expected", [
    ("", ["Acme Corp", "Beta Labs", "gamma Health"]),
    ("sort=name&dir=desc", ["gamma Health", "Beta Labs", "Acme Corp"]),
    ("sort=arr&dir=desc", ["Acme Corp", "gamma Health", "Beta Labs"]),
    ("sort=events_30d&dir=desc", ["Acme Corp", "Beta Labs", "gamma Health"]),
    ("sort=users", ["gamma Health", "Beta Labs", "Acme Corp"]),
    ("sort=last_seen&dir=desc", ["Acme Corp", "Beta Labs", "gamma Health"]),
    ("sort=trend", ["Beta Labs", "Acme Corp", "gamma Health"]),
])
def test_accounts_sort(seeded, query, expected):
    assert rows_of(text(seeded.get(f"/accounts?{query}"))) == expected


def test_accounts_pagination(db, tenant, admin):
    ingest(db.session, tenant.workspace, "account", "upsert",
           [{"account_id": f"a{i:02d}", "name": f"Account {i:02d}"} for i in range(30)])
    first = text(admin.get("/accounts"))
    assert rows_of(first)[0] == "Account 00" and len(rows_of(first)) == 25
    assert "1–25 of 30" in first and 'rel="next"' in first
    second = text(admin.get("/accounts?page=2"))
    assert rows_of(second) == [f"Account {i}" for i in range(25, 30)]
    assert "26–30 of 30" in second and 'rel="prev"' in second
    assert len(rows_of(text(admin.get("/accounts?per_page=50")))) == 30
    response = admin.get("/accounts?page=9&per_page=50")
    assert response.status_code == 302 and "page=1" in response.headers["Location"]


def test_accounts_csv_export_follows_the_filters(seeded):
    response = seeded.get("/accounts?format=csv&field=arr&op=gt&value=10000&sort=arr")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(text(response))))
    assert [r["Name"] for r in table] == ["gamma Health", "Acme Corp"]
    acme = table[1]
    assert acme["Account ID"] == "acme-1" and acme["Plan"] == "enterprise"
    assert acme["Health Score"] == "87" and acme["Users"] == "2"
    assert acme["Events 30d"] == "5" and acme["Active 30d"] == "2"


def test_csv_cells_never_become_spreadsheet_formulas(db, tenant, admin):
    ingest(db.session, tenant.workspace, "account", "upsert",
           [{"account_id": "f1", "name": "=HYPERLINK(\"http://evil\")"}])
    table = list(csv.DictReader(io.StringIO(text(admin.get("/accounts?format=csv")))))
    assert table[0]["Name"].startswith("'=")


def test_chosen_columns(seeded):
    html = text(seeded.get("/accounts?col=health_score&col=region"))
    header = html.split('id="accounts-table"')[1].split("</thead>")[0]
    assert "Health Score" in header and "Region" in header and "Plan" not in header


# --- account page ---------------------------------------------------------------------------

def test_account_page(seeded):
    html = text(seeded.get("/accounts/acme-1"))
    dims = html.split('id="dimensions"')[1].split("</table>")[0]
    assert "Plan" in dims and "enterprise" in dims and "1,200" in dims
    assert "Health Score" in dims and "custom" in dims
    users = html.split('id="account-users"')[1].split("</table>")[0]
    assert users.index("ada@acme.io") < users.index("alan@acme.io")  # most active first
    assert 'id="account-events-chart-data"' in html and 'id="account-wau-chart-data"' in html
    metrics = html.split("event-metrics")[1].split("</table>")[0]
    assert "sign_in" in metrics and "report_created" in metrics
    assert "widgets=4" in html  # latest events with properties


def test_markup_in_data_is_shown_as_text(seeded):
    html = text(seeded.get("/accounts/beta-2"))
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    listing = text(seeded.get("/accounts?col=industry"))
    assert "<script>alert" not in listing and "&lt;script&gt;" in listing
    events = text(seeded.get("/events?event=report_created"))
    assert "<b>Q3</b>" not in events and "&lt;b&gt;Q3&lt;/b&gt;" in events


def test_chart_json_cannot_close_its_script_block(db, tenant, admin):
    ingest(db.session, tenant.workspace, "account", "upsert", [{"account_id": "x", "name": "X"}])
    ingest(db.session, tenant.workspace, "user", "upsert",
           [{"user_id": "ux", "email": "x@x.io", "account_id": "x"}])
    ingest(db.session, tenant.workspace, "event", "insert",
           [{"event": "</script><script>alert(1)</script>", "user_id": "ux", "timestamp": ago(1)}])
    html = text(admin.get("/accounts/x"))
    assert "<script>alert(1)" not in html
    block = html.split('id="account-events-chart-data">')[1].split("</script>")[0]
    figure = json.loads(block)  # the whole figure: nothing closed the block early
    assert figure["data"][0]["name"] == "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"


# --- users ----------------------------------------------------------------------------------

def test_users_list_search_filter_sort_and_csv(seeded):
    html = text(seeded.get("/users"))
    assert rows_of(html, "users-table") == ["ada@acme.io", "alan@acme.io", "bea@beta.io"]
    assert "Acme Corp" in html
    assert rows_of(text(seeded.get("/users?q=beta")), "users-table") == ["bea@beta.io"]
    query = "field=role&op=eq&value=analyst"
    assert rows_of(text(seeded.get(f"/users?{query}")), "users-table") == ["alan@acme.io"]
    ordered = rows_of(text(seeded.get("/users?sort=events_30d&dir=desc")), "users-table")
    assert ordered == ["ada@acme.io", "alan@acme.io", "bea@beta.io"]
    by_account = "field=account_id&op=eq&value=acme-1"
    assert len(rows_of(text(seeded.get(f"/users?{by_account}")), "users-table")) == 2
    table = list(csv.DictReader(io.StringIO(text(seeded.get(f"/users?format=csv&{query}")))))
    assert [(r["User ID"], r["Role"], r["Events 30d"]) for r in table] == [("u2", "analyst", "1")]


def test_user_page(seeded):
    html = text(seeded.get("/users/u1"))
    assert "Ada" in html and 'href="/accounts/acme-1"' in html
    assert 'id="user-activity-chart-data"' in html
    assert html.count('class="event-name"') == 4  # the timeline


# --- events ---------------------------------------------------------------------------------

def test_events_page_picks_an_event_and_breaks_it_down(seeded):
    html = text(seeded.get("/events"))
    names = html.split('id="event-names"')[1].split("</ul>")[0]
    assert names.index("sign_in") < names.index("report_created")
    assert 'id="event-trend-chart-data"' in html  # the busiest event is selected
    html = text(seeded.get("/events?event=sign_in&by=plan"))
    table = html.split('id="breakdown-table"')[1].split("</table>")[0]
    assert re.search(r'enterprise</td><td class="num">4<', table)
    assert re.search(r'starter</td><td class="num">1<', table)
    html = text(seeded.get("/events?event=report_created"))
    assert "<th>widgets</th>" in html and "<th>title</th>" in html


# --- fields ---------------------------------------------------------------------------------

def test_fields_catalog_counts(seeded):
    html = text(seeded.get("/fields"))
    table = html.split('id="fields-table"')[1].split("</table>")[0]
    row = table.split("<code>plan</code>")[1].split("</tr>")[0]
    assert re.search(r">3 <span", row)  # the three live accounts have a plan
    assert "health_score" in table and "custom" in table
    events = text(seeded.get("/fields?object=event"))
    assert "<code>widgets</code>" in events


def test_admin_creates_and_renames_fields(db, seeded, tenant):
    response = post(seeded, "/fields", {"object": "account", "key": "nps", "label": "NPS",
                                        "type": "NUMBER"}, "/fields")
    assert response.status_code == 302
    field = db.session.get(Field, (tenant.id, "account", "nps"))
    assert (field.label, field.type, field.is_default) == ("NPS", "NUMBER", False)
    response = post(seeded, "/fields", {"object": "account", "key": "nps", "label": "Again",
                                        "type": "STRING"}, "/fields")
    assert "already exists" in text(seeded.get("/fields"))
    response = post(seeded, "/fields/account/plan/label", {"label": "Pricing plan"}, "/fields")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Field, (tenant.id, "account", "plan")).label == "Pricing plan"
    assert "Pricing plan" in text(seeded.get("/accounts/acme-1"))
    assert post(seeded, "/fields/account/nope/label", {"label": "x"}, "/fields").status_code == 404


def test_field_changes_need_csrf_and_admin(db, seeded, member, tenant):
    response = seeded.post("/fields", data={"object": "account", "key": "k", "label": "K",
                                            "type": "STRING"})
    assert response.status_code == 400
    assert post(member, "/fields/account/plan/label", {"label": "x"}, "/fields").status_code == 403
    assert db.session.get(Field, (tenant.id, "account", "k")) is None


# --- API keys -------------------------------------------------------------------------------

def test_create_key_shows_it_once_then_revoke(db, admin, tenant):
    response = post(admin, "/settings/keys", {"name": "Hightouch prod"}, "/settings/keys")
    assert response.status_code == 303  # POST-redirect-GET: a reload never issues another key
    assert response.headers["Location"] == "/settings/keys/new"
    response = admin.get("/settings/keys/new")
    assert response.headers["Cache-Control"] == "no-store"
    plaintext = re.search(r'id="new-key-value">([^<]+)<', text(response)).group(1)
    key = verify_key(db.session, plaintext)
    assert key is not None and key.name == "Hightouch prod" and key.workspace_id == tenant.id
    listing = text(admin.get("/settings/keys"))
    assert "Hightouch prod" in listing and plaintext not in listing
    again = admin.get("/settings/keys/new")  # the reload: shown once, no second key
    assert again.status_code == 302 and plaintext not in text(admin.get("/settings/keys"))
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiKey).where(
        ApiKey.workspace_id == tenant.id, ApiKey.name == "Hightouch prod")) == 1
    assert admin.post(f"/settings/keys/{key.id}/revoke").status_code == 400  # no CSRF token
    response = post(admin, f"/settings/keys/{key.id}/revoke", form_page="/settings/keys")
    assert response.status_code == 302
    db.session.expire_all()
    assert verify_key(db.session, plaintext) is None
    assert verify_key(db.session, tenant.key) is not None  # the other key still works


def test_keys_of_another_workspace_cannot_be_revoked(db, admin, other_tenant):
    theirs = db.session.scalars(sa.select(ApiKey).where(
        ApiKey.workspace_id == other_tenant.id)).one()
    response = post(admin, f"/settings/keys/{theirs.id}/revoke", form_page="/settings/keys")
    assert response.status_code == 404
    assert verify_key(db.session, other_tenant.key) is not None


def test_members_cannot_create_keys(db, member, tenant):
    assert post(member, "/settings/keys", {"name": "x"}, "/settings/keys").status_code == 403
    assert "Only workspace admins" in text(member.get("/settings/keys"))
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiKey).where(
        ApiKey.workspace_id == tenant.id)) == 1


# --- members --------------------------------------------------------------------------------

def test_admin_invites_and_removes_a_member(app, db, admin, tenant):
    response = post(admin, "/settings/members", {"email": "New@Acme.example",
                                                 "password": "a long password", "role": "member"},
                    "/settings/members")
    assert response.status_code == 302
    newcomer = app.test_client()
    assert login(newcomer, "new@acme.example", "a long password").status_code == 302
    assert newcomer.get("/accounts").status_code == 200
    response = post(admin, "/settings/members", {"email": "new@acme.example",
                                                 "password": "another password", "role": "admin"},
                    "/settings/members")
    assert response.status_code == 400 and "Already a member" in text(response)
    response = post(admin, "/settings/members/new@acme.example/remove",
                    form_page="/settings/members")
    assert response.status_code == 302
    assert db.session.get(Member, (tenant.id, "new@acme.example")) is None
    assert newcomer.get("/accounts").status_code == 302  # signed out: the member is gone


def test_invite_validates_and_admins_keep_their_seat(db, admin, member, tenant):
    response = post(admin, "/settings/members", {"email": "not-an-email", "password": "short"},
                    "/settings/members")
    assert response.status_code == 400
    assert "Enter an email address" in text(response) and "at least 10" in text(response)
    post(admin, f"/settings/members/{tenant.admin_email}/remove", form_page="/settings/members")
    assert db.session.get(Member, (tenant.id, tenant.admin_email)) is not None
    response = post(member, f"/settings/members/{tenant.admin_email}/remove",
                    form_page="/settings/members")
    assert response.status_code == 403
