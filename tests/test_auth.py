"""API keys: issuance, hashing at rest, Bearer and Basic forms, revocation, scoping."""
import base64

import pytest
import sqlalchemy as sa
from flask import g, jsonify

from correlated.auth import (KEY_PREFIX, TOUCH_EVERY, check_login, hash_key, issue_key,
                             require_key, revoke_keys, touch_key, verify_key)
from correlated.models import ApiKey, Workspace, utcnow


@pytest.fixture
def whoami(app):
    """A route guarded by the product's key check, answering the principal's workspace."""

    @app.get("/api/v1/_test_whoami")
    @require_key()
    def _whoami():
        return jsonify(workspace_id=g.principal.workspace_id, key=g.principal.name)

    return "/api/v1/_test_whoami"


def basic(key: str, password: str = "") -> dict[str, str]:
    token = base64.b64encode(f"{key}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_key_format_and_hash_at_rest(db, tenant):
    assert tenant.key.startswith(KEY_PREFIX) and len(tenant.key) >= len(KEY_PREFIX) + 32
    stored = db.session.scalars(sa.select(ApiKey)).one()
    assert stored.key_hash == hash_key(tenant.key) and stored.prefix == tenant.key[:12]
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                assert all(tenant.key not in str(value) for value in row)


def test_bearer_and_basic_are_accepted(client, tenant, whoami):
    for headers in (tenant.headers, basic(tenant.key)):
        response = client.get(whoami, headers=headers)
        assert response.status_code == 200
        assert response.json == {"workspace_id": tenant.id, "key": tenant.key[:12]}


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer cor_not-a-real-key-at-all-000000000000000"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic !!!notbase64"},
    {"Authorization": "Token something"},
])
def test_missing_or_unknown_keys_get_401_json(client, tenant, whoami, headers):
    response = client.get(whoami, headers=headers)
    assert response.status_code == 401
    assert "API key" in response.json["error"]


def test_revoked_key_is_refused(db, client, tenant, whoami):
    assert revoke_keys(db.session, tenant.key[:12]) == 1
    db.session.commit()
    response = client.get(whoami, headers=tenant.headers)
    assert response.status_code == 401 and response.json["error"] == "invalid or revoked API key"
    assert verify_key(db.session, tenant.key) is None


def test_last_used_is_recorded(db, client, tenant, whoami):
    client.get(whoami, headers=tenant.headers)
    db.session.expire_all()
    assert db.session.scalars(sa.select(ApiKey)).one().last_used_at is not None


def test_marking_a_key_used_is_a_unit_of_work_of_its_own(db, tenant):
    """The mark is stored even when another writer committed since the key was read (SQLite),
    once a minute; it never commits nor drops changes pending in the caller's session."""
    key = verify_key(db.session, tenant.key)  # this session's read transaction starts here
    with db.engine.begin() as other:  # another request's write commits in between
        other.execute(sa.update(Workspace).values(name="renamed"))
    touch_key(db.session, key)
    marked = last_used(db)
    assert marked is not None
    touch_key(db.session, key)  # within the minute: nothing to do
    assert last_used(db) == marked

    with db.engine.begin() as other:  # a minute later, with the caller's work pending
        other.execute(sa.update(ApiKey).values(last_used_at=utcnow() - TOUCH_EVERY * 2))
    db.session.rollback()
    key = verify_key(db.session, tenant.key)
    db.session.get(Workspace, tenant.id).name = "pending"
    touch_key(db.session, key)
    assert db.session.get(Workspace, tenant.id).name == "pending"  # neither dropped...
    with db.engine.connect() as other:  # ...nor committed, and the mark waits
        assert other.scalar(sa.select(Workspace.name)) == "renamed"
    assert last_used(db) < marked


def last_used(db):
    with db.engine.connect() as other:
        return other.scalar(sa.select(ApiKey.last_used_at))


def test_keys_belong_to_one_workspace(db, client, tenant, other_tenant, whoami):
    assert client.get(whoami, headers=other_tenant.headers).json["workspace_id"] == other_tenant.id
    assert revoke_keys(db.session, tenant.key[:12], workspace_id=other_tenant.id) == 0
    _key, second = issue_key(db.session, tenant.workspace, "second")
    db.session.commit()
    assert verify_key(db.session, second).workspace_id == tenant.id


def test_member_login_checks_the_password(db, tenant):
    assert check_login(db.session, tenant.admin_email.upper(), tenant.admin_password) is not None
    assert check_login(db.session, tenant.admin_email, "wrong") is None
