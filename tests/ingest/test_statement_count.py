"""What one request costs the database: statements and commits of a Hightouch `add` of 3 users.

Counted with SQLAlchemy's cursor and commit events over the real HTTP surface (the test client
runs the whole request: key, configuration, engine, log). The bounds are the numbers after
issue #12 (before: 7 statements / 2 commits on PostgreSQL, 9 / 2 on SQLite), so a change that
adds a round trip per request shows up here.
"""
from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa

from correlated.extensions import db as _db
from correlated.models import IngestLog, User

USERS = {"object": "user", "mode": "upsert",
         "identifierMapping": {"from": "uid", "to": "user_id"},
         "mappings": [{"from": "mail", "to": "email"}, {"from": "fn", "to": "first_name"}]}
ROWS = [{"uid": f"u{i}", "mail": f"u{i}@acme.io", "fn": f"U{i}"} for i in range(3)]


@contextmanager
def counted(engine: sa.Engine):
    """Counts {"statements": n, "commits": n} on `engine` while the block runs."""
    counts = {"statements": 0, "commits": 0}

    def statement(*_args) -> None:
        counts["statements"] += 1

    def commit(_conn) -> None:
        counts["commits"] += 1

    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "commit", commit)
    try:
        yield counts
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
        sa.event.remove(engine, "commit", commit)


def hightouch_add(client, tenant) -> dict[str, int]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "add",
            "params": {"idColumn": "uid", "configuration": USERS, "rows": ROWS}}
    with counted(_db.engine) as counts:
        response = client.post("/hightouch/rpc", json=body, headers=tenant.headers)
    assert response.get_json()["result"] == {"rejectedRows": []}
    return counts


def test_a_hightouch_add_of_3_users(client, db, tenant, database_url, capsys):
    hightouch_add(client, tenant)  # the first request warms the caches (statements, catalog)
    counts = hightouch_add(client, tenant)
    with capsys.disabled():
        print(f"\nHightouch add of 3 users on {database_url.split(':')[0]}: {counts}")
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 3
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IngestLog)) == 2
    # PostgreSQL: key, workspace, catalog, existing users, the upsert, the log entry; 1 commit.
    # SQLite adds a BEGIN for each of its two transactions (reads, then BEGIN IMMEDIATE).
    sqlite = database_url.startswith("sqlite")
    assert counts["commits"] <= (2 if sqlite else 1)
    # Dimension history (#15) reuses the read of the existing users and writes only when a
    # request creates or changes users (one statement for the changes, one for the stale
    # marks); this second request changes nothing, so it costs no statement more.
    assert counts["statements"] <= (8 if sqlite else 6)
