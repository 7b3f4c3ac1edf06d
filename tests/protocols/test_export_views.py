"""`correlated db export-views`: on PostgreSQL, views a read-only role can read (its own
workspace's rows only) and nothing else; on SQLite, an explanation."""
from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from correlated.ingest.engine import ingest
from correlated.models import utcnow
from correlated.signals import evaluate, service

FREE = {"name": "Expansion: free", "category": "expansion",
        "conditions": [{"field": "plan", "op": "eq", "value": "free"}]}


def seed(db, ws, prefix: str) -> str:
    ingest(db.session, ws, "account", "upsert", [
        {"account_id": f"{prefix}{i}", "name": f"{prefix} {i}", "plan": ("free", "pro")[i % 2],
         "owner_email": f"rep{i}@{prefix}.example"} for i in range(4)])
    ingest(db.session, ws, "user", "upsert", [
        {"user_id": f"{prefix}-u{i}", "email": f"u{i}@{prefix}.example",
         "account_id": f"{prefix}{i}"} for i in range(4)])
    signal = service.create(db.session, ws.id, FREE)
    db.session.commit()
    evaluate.run(db.session, ws.id, signal.id, utcnow(), force=True)
    return signal.id


@pytest.fixture
def roles(app, db):
    """Unique role names (roles are cluster-wide), dropped with the views afterwards."""
    made: list[str] = []
    yield lambda: made.append(f"test_reader_{secrets.token_hex(4)}") or made[-1]
    if db.engine.dialect.name != "postgresql":
        return
    db.session.remove()
    with db.engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS correlated_export CASCADE"))
        for role in made:
            conn.execute(sa.text(f"DROP OWNED BY {role}"))
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))


def connect_as(db, role: str, password: str) -> sa.Engine:
    url = db.engine.url.set(username=role, password=password)
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def refused(engine: sa.Engine, statement: str) -> str:
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as caught:
        conn.execute(sa.text(statement))
    return str(caught.value.orig)


def test_the_role_reads_its_workspace_views_and_nothing_else(app, db, runner, tenant,
                                                             other_tenant, roles):
    if db.engine.dialect.name != "postgresql":
        result = runner.invoke(args=["db", "export-views", "--workspace", "acme"])
        assert result.exit_code == 1
        assert "export views are PostgreSQL-only" in result.output
        assert "GET /api/v1/accounts?include=metrics,signals" in result.output
        return
    seed(db, tenant.workspace, "acme")
    seed(db, other_tenant.workspace, "globex")
    db.session.commit()
    mine, theirs, password = roles(), roles(), "s3cret-'quoted"
    result = runner.invoke(args=["db", "export-views", "--workspace", "acme", "--role", mine,
                                 "--password", password])
    assert result.exit_code == 0, result.output
    assert "views accounts, users, signals, signal_members, signal_transitions" in result.output
    assert f"role {mine}: reads workspace 'acme' only" in result.output
    made = runner.invoke(args=["db", "export-views", "--workspace", "globex", "--role", theirs])
    assert "shown only this once" in made.output
    their_password = made.output.split("password: ")[1].split(" ")[0]

    reader = connect_as(db, mine, password)
    with reader.connect() as conn:
        accounts = conn.execute(sa.text(
            "SELECT account_id, dimensions->>'owner_email' AS owner, signals, users, "
            "'expansion' = ANY(signal_categories) AS in_signal_expansion, updated_at "
            "FROM correlated_export.accounts ORDER BY account_id")).mappings().all()
        members = conn.execute(sa.text(
            "SELECT entity_id, signal_name, entered_at FROM correlated_export.signal_members "
            "ORDER BY entity_id")).all()
        kinds = conn.execute(sa.text(
            "SELECT DISTINCT kind FROM correlated_export.signal_transitions")).scalars().all()
        users = conn.execute(sa.text("SELECT user_id FROM correlated_export.users")).scalars()
        assert sorted(users) == [f"acme-u{i}" for i in range(4)]
        signals = conn.execute(sa.text(
            "SELECT name, members FROM correlated_export.signals")).all()
    assert [a["account_id"] for a in accounts] == ["acme0", "acme1", "acme2", "acme3"]
    assert [a["in_signal_expansion"] for a in accounts] == [True, False, True, False]
    assert accounts[0]["signals"] == ["Expansion: free"] and accounts[1]["signals"] == []
    assert accounts[0]["owner"] == "rep0@acme.example" and accounts[0]["users"] == 1
    assert [m[0] for m in members] == ["acme0", "acme2"] and all(m[2] for m in members)
    assert kinds == ["entered"] and signals == [("Expansion: free", 2)]

    for statement in ("SELECT * FROM accounts", "SELECT * FROM export_readers",
                      "SELECT * FROM signal_members", "SELECT * FROM api_keys"):
        assert "permission denied" in refused(reader, statement)
    for statement in ("INSERT INTO correlated_export.signals (signal_id) VALUES ('x')",
                      "DELETE FROM correlated_export.accounts",
                      "CREATE TABLE public.stolen (x int)",
                      "CREATE TABLE correlated_export.stolen (x int)"):
        message = refused(reader, statement)
        assert any(reason in message for reason in (
            "read-only transaction", "permission denied", "cannot delete from view")), message
    with reader.connect() as conn:  # even outside the default read-only transaction
        conn.execute(sa.text("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"))
        with pytest.raises(sa.exc.DBAPIError, match="permission denied"):
            conn.execute(sa.text("DELETE FROM correlated_export.signals"))  # one table: updatable
    reader.dispose()

    other = connect_as(db, theirs, their_password)
    with other.connect() as conn:
        ids = conn.execute(sa.text("SELECT account_id FROM correlated_export.accounts")).scalars()
        assert sorted(ids) == ["globex0", "globex1", "globex2", "globex3"]
    other.dispose()


def test_views_are_recreated_and_dropped(app, db, runner, tenant, roles):
    if db.engine.dialect.name != "postgresql":
        assert "PostgreSQL-only" in runner.invoke(args=["db", "export-views"]).output
        return
    role = roles()
    seed(db, tenant.workspace, "acme")
    assert runner.invoke(args=["db", "export-views", "--workspace", "acme", "--role", role,
                               "--password", "pw"]).exit_code == 0
    assert runner.invoke(args=["db", "export-views", "--drop"]).exit_code == 0
    again = runner.invoke(args=["db", "export-views"])  # the registered reader gets its grants
    assert again.exit_code == 0, again.output
    reader = connect_as(db, role, "pw")
    with reader.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT count(*) FROM correlated_export.accounts")).scalar() == 4
    reader.dispose()
    existing = runner.invoke(args=["db", "export-views", "--workspace", "acme", "--role", role])
    assert "password: unchanged" in existing.output
    bad = runner.invoke(args=["db", "export-views", "--workspace", "acme", "--role", "Bad-Name"])
    assert bad.exit_code == 1 and "not a lower-case PostgreSQL name" in bad.output
