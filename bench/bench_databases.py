"""Scratch PostgreSQL databases for the benchmarks: each run starts from an empty one."""
from __future__ import annotations

import sqlalchemy as sa


def recreate_postgres(url: str | sa.URL) -> str:
    """Drop (closing its connections) and create the database `url` names; returns the URL.

    Connects through the server's `postgres` maintenance database, since a database cannot be
    dropped from a connection to itself."""
    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    return target.render_as_string(hide_password=False)


def drop_postgres(url: str | sa.URL) -> None:
    """Drop the database `url` names (closing its connections)."""
    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    admin.dispose()
