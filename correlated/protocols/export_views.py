"""PostgreSQL views for Hightouch and Census to read as a warehouse source
(`correlated db export-views`, docs/sync-to-crm.md).

A schema (`correlated_export`) of stable views — accounts and users with their metrics and
signals, signals, signal members with entered_at, transitions — and read-only login roles,
each allowed to SELECT those views and nothing else. Every view keeps the rows of the
workspace its reader is registered for (`export_readers`, looked up by `current_user`), so
one set of views serves a role per workspace. The views are `security_barrier`: a reader's
own functions cannot see rows the filter drops.

A feature (scores) adds its views with `register_view`.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from ..models import ExportReader, Workspace

SCHEMA = "correlated_export"
NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# The rows of the reader's workspace: `{alias}.workspace_id` is compared with it.
OWN = ("{alias}.workspace_id = (SELECT r.workspace_id FROM export_readers r "
       "WHERE r.role_name = current_user)")

ACCOUNTS = """
SELECT a.account_id, a.name, a.traits AS dimensions, a.created_at,
       GREATEST(a.updated_at, m.updated_at, t.last_at) AS updated_at, a.archived_at,
       COALESCE(u.users, 0) AS users,
       COALESCE(m.active_users_7d, 0) AS active_users_7d,
       COALESCE(m.active_users_30d, 0) AS active_users_30d,
       COALESCE(m.events_30d, 0) AS events_30d,
       COALESCE(m.events_prev_30d, 0) AS events_prev_30d, m.last_seen,
       COALESCE(s.names, '{{}}') AS signals, COALESCE(s.ids, '{{}}') AS signal_ids,
       COALESCE(s.categories, '{{}}') AS signal_categories
FROM accounts a
LEFT JOIN account_metrics m ON m.workspace_id = a.workspace_id AND m.account_id = a.account_id
LEFT JOIN LATERAL (SELECT count(*) AS users FROM users x WHERE x.workspace_id = a.workspace_id
                   AND x.account_id = a.account_id AND x.archived_at IS NULL) u ON true
{memberships}
WHERE {own}
"""
USERS = """
SELECT a.user_id, a.email, a.account_id, a.traits AS dimensions, a.created_at,
       GREATEST(a.updated_at, m.updated_at, t.last_at) AS updated_at, a.archived_at,
       COALESCE(m.active_days_30d, 0) AS active_days_30d,
       COALESCE(m.events_30d, 0) AS events_30d,
       COALESCE(m.events_prev_30d, 0) AS events_prev_30d, m.last_seen,
       COALESCE(s.names, '{{}}') AS signals, COALESCE(s.ids, '{{}}') AS signal_ids,
       COALESCE(s.categories, '{{}}') AS signal_categories
FROM users a
LEFT JOIN user_metrics m ON m.workspace_id = a.workspace_id AND m.user_id = a.user_id
{memberships}
WHERE {own}
"""
# The signals an entity is in now, and its latest transition (what moves updated_at).
MEMBERSHIPS = """
LEFT JOIN LATERAL (
    SELECT array_agg(g.name ORDER BY g.name, g.id) AS names,
           array_agg(g.id ORDER BY g.name, g.id) AS ids,
           array_agg(DISTINCT g.category) AS categories
    FROM signal_members sm
    JOIN signals g ON g.workspace_id = sm.workspace_id AND g.id = sm.signal_id
    WHERE sm.workspace_id = a.workspace_id AND sm.entity_id = a.{key}
      AND g.object = '{obj}') s ON true
LEFT JOIN LATERAL (
    SELECT max(tr.at) AS last_at
    FROM signal_transitions tr
    JOIN signals g ON g.workspace_id = tr.workspace_id AND g.id = tr.signal_id
    WHERE tr.workspace_id = a.workspace_id AND tr.entity_id = a.{key}
      AND g.object = '{obj}') t ON true
"""
SIGNALS = """
SELECT g.id AS signal_id, g.name, g.category, g.object, g.match, g.conditions, g.created_at,
       g.updated_at, g.evaluated_at,
       (SELECT count(*) FROM signal_members sm WHERE sm.workspace_id = g.workspace_id
        AND sm.signal_id = g.id) AS members
FROM signals g
WHERE {own}
"""
SIGNAL_MEMBERS = """
SELECT sm.signal_id, g.name AS signal_name, g.category, g.object, sm.entity_id, sm.entered_at,
       sm.backfill, sm."values"
FROM signal_members sm JOIN signals g ON g.workspace_id = sm.workspace_id AND g.id = sm.signal_id
WHERE {own}
"""
SIGNAL_TRANSITIONS = """
SELECT tr.id AS transition_id, tr.signal_id, g.name AS signal_name, g.category, g.object,
       tr.entity_id, tr.kind, tr.at, tr.backfill, tr."values"
FROM signal_transitions tr
JOIN signals g ON g.workspace_id = tr.workspace_id AND g.id = tr.signal_id
WHERE {own}
"""


@dataclass(frozen=True)
class View:
    """A view of the export schema: `sql` is a SELECT with an `{own}` placeholder."""

    name: str
    sql: str
    own_alias: str


VIEWS: list[View] = [
    View("accounts", ACCOUNTS.replace("{memberships}", MEMBERSHIPS.format(
        key="account_id", obj="account")), "a"),
    View("users", USERS.replace("{memberships}", MEMBERSHIPS.format(
        key="user_id", obj="user")), "a"),
    View("signals", SIGNALS, "g"),
    View("signal_members", SIGNAL_MEMBERS, "sm"),
    View("signal_transitions", SIGNAL_TRANSITIONS, "tr"),
]
EXTRA_VIEWS: list[Callable[[], View]] = []


def register_view(make: Callable[[], View]) -> None:
    """Add a view (scores, for example) to those `export-views` creates."""
    if make not in EXTRA_VIEWS:
        EXTRA_VIEWS.append(make)


def views() -> list[View]:
    return VIEWS + [make() for make in EXTRA_VIEWS]


class NotPostgres(Exception):
    """The views and roles are PostgreSQL's; SQLite has neither schemas nor roles."""


def quote(bind: Connection, name: str) -> str:
    return bind.dialect.identifier_preparer.quote(name)


def create_views(bind: Connection, schema: str = SCHEMA) -> list[str]:
    """(Re)create the schema's views and grant them to every registered reader; their names."""
    _require_postgres(bind)
    s = quote(bind, schema)
    bind.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {s}"))
    made = []
    for view in views():
        # DROP first: CREATE OR REPLACE cannot change a view's columns.
        bind.execute(sa.text(f"DROP VIEW IF EXISTS {s}.{quote(bind, view.name)}"))
        select = view.sql.format(own=OWN.format(alias=view.own_alias))
        bind.execute(sa.text(f"CREATE VIEW {s}.{quote(bind, view.name)} "
                             f"WITH (security_barrier = true) AS {select}"))
        made.append(view.name)
    for role in bind.scalars(sa.select(ExportReader.role_name).order_by(ExportReader.role_name)):
        _grant(bind, schema, role)
    return made


def drop_views(bind: Connection, schema: str = SCHEMA) -> None:
    """Drop the export schema (readers stay registered; `create_views` brings it back): before
    a `db upgrade` that changes a table the views read."""
    _require_postgres(bind)
    bind.execute(sa.text(f"DROP SCHEMA IF EXISTS {quote(bind, schema)} CASCADE"))


def add_reader(bind: Connection, workspace: Workspace, role: str, password: str | None,
               schema: str = SCHEMA) -> str | None:
    """Create (or re-register) a read-only login role for `workspace`; its new password, or
    None when the role existed and no password was asked for."""
    _require_postgres(bind)
    if not NAME.match(role):
        raise ValueError(f"role: {role!r} is not a lower-case PostgreSQL name (a-z, 0-9, _)")
    r = quote(bind, role)
    exists = bind.scalar(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    if not exists:
        password = password or secrets.token_urlsafe(24)
        bind.execute(sa.text(f"CREATE ROLE {r} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                             f"NOINHERIT PASSWORD {_literal(password)}"))
    elif password:
        bind.execute(sa.text(f"ALTER ROLE {r} PASSWORD {_literal(password)}"))
    # A sync client that forgets itself still cannot write.
    bind.execute(sa.text(f"ALTER ROLE {r} SET default_transaction_read_only = on"))
    stmt = postgresql.insert(ExportReader.__table__).values(
        role_name=role, workspace_id=workspace.id)
    bind.execute(stmt.on_conflict_do_update(index_elements=["role_name"],
                                            set_={"workspace_id": workspace.id}))
    _grant(bind, schema, role)
    return password


def _grant(bind: Connection, schema: str, role: str) -> None:
    s, r = quote(bind, schema), quote(bind, role)
    database = quote(bind, bind.scalar(sa.text("SELECT current_database()")))
    bind.execute(sa.text(f"GRANT CONNECT ON DATABASE {database} TO {r}"))
    bind.execute(sa.text(f"GRANT USAGE ON SCHEMA {s} TO {r}"))
    for view in views():
        bind.execute(sa.text(f"GRANT SELECT ON {s}.{quote(bind, view.name)} TO {r}"))


def _literal(value: str) -> str:
    """A SQL string literal (role DDL takes no bound parameters)."""
    if "\x00" in value:
        raise ValueError("password: must not contain NUL")
    return "'" + value.replace("'", "''") + "'"


def _require_postgres(bind: Connection) -> None:
    if bind.dialect.name != "postgresql":
        raise NotPostgres(
            "export views are PostgreSQL-only: Hightouch and Census read them as a warehouse "
            "source with a read-only role, and SQLite has neither schemas nor roles. On SQLite "
            "pull the export API instead: GET /api/v1/accounts?include=metrics,signals"
            "&updated_since=... (docs/sync-to-crm.md).")
