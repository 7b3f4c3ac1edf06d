"""Sessions and access (issue #13, 9-12): sign-out and password changes end sessions on the
server, `next` never leaves the site, members never see a connection's secret, sign-in costs
the same for unknown emails, one login in two workspaces chooses, and passwords change."""
from __future__ import annotations

import statistics
import time

import pytest

from correlated.auth import add_member, matching_members
from correlated.models import Member
from correlated.workspaces import create_workspace

from ..pages import signed_in, token_of


def saved_cookie(client) -> str:
    return client.get_cookie("session").value


def replay(app, cookie: str):
    """What a saved copy of a session cookie gets, from another browser."""
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief.get("/accounts")


# --- 9. sessions end on the server ------------------------------------------------------------

def test_a_saved_cookie_stops_working_after_logout(app, tenant, fresh_g):
    browser, token = signed_in(app, tenant.admin_email, tenant.admin_password)
    cookie = saved_cookie(browser)
    assert replay(app, cookie).status_code == 200
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 302
    response = replay(app, cookie)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_removing_a_member_ends_their_sessions_even_if_they_are_added_again(app, db, tenant,
                                                                           fresh_g):
    add_member(db.session, tenant.workspace, "bob@acme.example", "bob's long password")
    db.session.commit()
    bob, _ = signed_in(app, "bob@acme.example", "bob's long password")
    cookie = saved_cookie(bob)
    admin, token = signed_in(app, tenant.admin_email, tenant.admin_password)
    admin.post("/settings/members/bob@acme.example/remove", data={"csrf_token": token})
    assert replay(app, cookie).status_code == 302
    add_member(db.session, tenant.workspace, "bob@acme.example", "bob's long password")
    db.session.commit()
    assert replay(app, cookie).status_code == 302


def change_password(browser, token: str, current: str, new: str, confirm: str | None = None):
    return browser.post("/settings/password", data={
        "current": current, "password": new, "confirm": new if confirm is None else confirm,
        "csrf_token": token})


def test_changing_the_password_ends_the_other_sessions_and_keeps_this_one(app, tenant, fresh_g):
    laptop, token = signed_in(app, tenant.admin_email, tenant.admin_password)
    phone, _ = signed_in(app, tenant.admin_email, tenant.admin_password)
    old_cookie = saved_cookie(laptop)
    assert laptop.get("/settings/password").status_code == 200
    response = change_password(laptop, token, tenant.admin_password, "a brand new password")
    assert response.status_code == 302
    assert laptop.get("/accounts").status_code == 200
    assert phone.get("/accounts").status_code == 302
    assert replay(app, old_cookie).status_code == 302
    assert signed_in(app, tenant.admin_email, "a brand new password")[0].get("/").status_code == 200


@pytest.mark.parametrize("current, new, confirm, message", [
    ("wrong password!", "a brand new password", None, "not your current password"),
    ("correct horse battery staple", "short", None, "at least 10 characters"),
    ("correct horse battery staple", "a brand new password", "another one", "differ"),
])
def test_a_refused_password_change_says_why_and_changes_nothing(app, db, tenant, fresh_g,
                                                                current, new, confirm, message):
    browser, token = signed_in(app, tenant.admin_email, tenant.admin_password)
    response = change_password(browser, token, current, new, confirm)
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert browser.get("/accounts").status_code == 200
    assert matching_members(db.session, tenant.admin_email, tenant.admin_password)


def test_the_password_change_needs_its_csrf_token(app, tenant, fresh_g):
    browser, _token = signed_in(app, tenant.admin_email, tenant.admin_password)
    response = change_password(browser, "forged", tenant.admin_password, "a brand new password")
    assert response.status_code == 400


# --- 10. next never leaves the site ------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/%5C/evil.com", "/%5Cevil.com", "%5C%5Cevil.com", "/%5C%5Cevil.com", "//evil.com",
    "https://evil.com", "/%0D%0ALocation:%20https://evil.com", "/%0Aevil", "/%09/evil.com",
])
def test_next_never_points_to_another_site_nor_breaks_the_header(app, tenant, client, target):
    token = token_of(client.get("/login?next=" + target).get_data(as_text=True))
    response = client.post("/login?next=" + target, data={
        "email": tenant.admin_email, "password": tenant.admin_password, "csrf_token": token})
    assert response.status_code == 302, response.status_code
    assert response.headers["Location"] == "/"


def test_a_same_site_next_is_kept(app, tenant, client):
    token = token_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login?next=/accounts%3Fq%3Dx", data={
        "email": tenant.admin_email, "password": tenant.admin_password, "csrf_token": token})
    assert response.headers["Location"] == "/accounts?q=x"


# --- 11. the connection secret is for admins ---------------------------------------------------

def test_members_do_not_see_a_connections_secret(app, db, client, tenant, fresh_g):
    connection = client.post("/api/v1/connections", headers=tenant.headers,
                             json={"name": "Mine", "object": "account"}).get_json()
    secret = connection["authorization_header"]["value"]
    add_member(db.session, tenant.workspace, "bob@acme.example", "bob's long password")
    db.session.commit()
    admin, _ = signed_in(app, tenant.admin_email, tenant.admin_password)
    member, _ = signed_in(app, "bob@acme.example", "bob's long password")
    for page in (f"/connections/{connection['id']}", "/connections"):
        assert member.get(page).status_code == 200
        assert secret not in member.get(page).get_data(as_text=True), page
    assert secret in admin.get(f"/connections/{connection['id']}").get_data(as_text=True)
    assert "Only workspace admins" in member.get(
        f"/connections/{connection['id']}").get_data(as_text=True)


# --- 12. sign-in -------------------------------------------------------------------------------

def test_an_unknown_email_costs_as_long_as_a_wrong_password(db, tenant):
    def median_seconds(email: str) -> float:
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            assert matching_members(db.session, email, "not the password") == []
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    wrong_password, unknown = median_seconds(tenant.admin_email), median_seconds("no@one.example")
    assert unknown > 0.5 * wrong_password, (unknown, wrong_password)  # was 10 ms vs 153 ms


def test_one_login_in_two_workspaces_chooses_the_workspace(app, db, tenant, fresh_g):
    other = create_workspace(db.session, "initech", tenant.admin_email, tenant.admin_password)
    db.session.commit()
    client = app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login?next=/accounts", data={
        "email": tenant.admin_email, "password": tenant.admin_password, "csrf_token": token})
    assert response.status_code == 302 and "/login/workspace" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "acme" in page and "initech" in page
    assert client.get("/accounts").status_code == 302  # not signed in to either yet
    response = client.post("/login/workspace?next=/accounts",
                           data={"workspace_id": str(other.id), "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/accounts"
    assert "initech" in client.get("/").get_data(as_text=True)


def test_the_workspace_choice_needs_the_password_first(app, db, tenant, other_tenant, fresh_g):
    client = app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login/workspace",
                           data={"workspace_id": str(other_tenant.id), "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert client.get("/accounts").status_code == 302


def test_a_choice_only_offers_the_workspaces_the_password_opened(app, db, tenant, other_tenant,
                                                                  fresh_g):
    create_workspace(db.session, "initech", tenant.admin_email, tenant.admin_password)
    db.session.commit()
    client = app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"email": tenant.admin_email, "password": tenant.admin_password,
                                "csrf_token": token})
    response = client.post("/login/workspace",
                           data={"workspace_id": str(other_tenant.id), "csrf_token": token})
    assert response.status_code == 200 and "Choose one of the workspaces" in response.get_data(
        as_text=True)
    assert "globex" not in response.get_data(as_text=True)
    assert db.session.get(Member, (other_tenant.id, tenant.admin_email)) is None
