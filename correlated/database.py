"""Engine tuning and the few SQL pieces that differ between SQLite and PostgreSQL."""
from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable, Sequence

import orjson
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

# Ask for this on a session's first connection when the transaction will write (ingest):
# SQLite then takes the write lock up front and waits for it (busy_timeout) instead of
# failing with "database is locked" when a read transaction later tries to write.
WRITE_TRANSACTION = {"sqlite_begin": "IMMEDIATE"}
SQLITE_BUSY_TIMEOUT_MS = 30_000


def begin_write(session: Session) -> bool:
    """End the session's read transaction and begin a write one, for a unit of work of its own
    (SQLite refuses to turn a read transaction into a writer once another writer committed).

    False, changing nothing, when the session holds changes not yet flushed: they are the
    caller's unit of work, neither ours to commit nor to drop. Call it before the caller writes.
    """
    if session.new or session.dirty or session.deleted:
        return False
    session.rollback()  # only reads so far: nothing is lost
    session.connection(execution_options=WRITE_TRANSACTION)
    return True


def tune_engine(app: Flask) -> None:
    """Install SQLite pragmas and explicit BEGIN handling (once per process)."""
    if not event.contains(Engine, "connect", _sqlite_connect):
        event.listen(Engine, "connect", _sqlite_connect)
        event.listen(Engine, "begin", _sqlite_begin)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit transactions break BEGIN IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    if conn.dialect.name != "sqlite":
        return
    mode = conn.get_execution_options().get("sqlite_begin", "")
    conn.exec_driver_sql(f"BEGIN {mode}".strip())


CHUNK = 500  # IDs per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def json_dumps(value: Any) -> str:
    """JSON text for the JSON columns: orjson (fast; NaN becomes null), or the standard encoder
    for the little orjson refuses (integers beyond 64 bits, non-string keys)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def try_locked_write(session: Session, space: int, key: int) -> bool:
    """Commit what the session holds and begin a write transaction of its own, holding (on
    PostgreSQL) the transaction-scoped advisory lock (space, key), taken without waiting. False,
    rolled back, when another worker holds it: that work is theirs this round. SQLite has one
    writer at a time, so it needs no lock."""
    if session.in_transaction():
        session.commit()
    bind = session.connection(execution_options=WRITE_TRANSACTION)
    if is_sqlite(bind) or bind.scalar(sa.text("SELECT pg_try_advisory_xact_lock(:space, :key)"),
                                      {"space": space, "key": key}):
        return True
    session.rollback()
    return False


def is_sqlite(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "sqlite"


def insert(bind: Engine | Connection, table: sa.Table):
    """The dialect's INSERT, which has on_conflict_do_nothing/do_update."""
    if is_sqlite(bind):
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    return dialect_insert(table)


def merge_patch(bind: Engine | Connection, target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch in SQL: given keys overwrite, absent keys stay, null removes."""
    if is_sqlite(bind):
        return sa.func.json_patch(target, patch)
    return sa.func.correlated_merge_patch(target, patch)


def greatest(bind: Engine | Connection, a: Any, b: Any) -> Any:
    return sa.func.max(a, b) if is_sqlite(bind) else sa.func.greatest(a, b)


def json_array_agg(bind: Engine | Connection, column: Any) -> Any:
    """The aggregate that collects `column` into a JSON array."""
    if is_sqlite(bind):
        return sa.func.json_group_array(column)
    return sa.func.jsonb_agg(column)


def day_key(bind: Engine | Connection, column: Any) -> Any:
    """A DATE column as 'YYYY-MM-DD' text (independent of PostgreSQL's DateStyle)."""
    if is_sqlite(bind):
        return sa.cast(column, sa.String)
    return sa.func.to_char(column, "YYYY-MM-DD")


def day(bind: Engine | Connection, column: Any) -> Any:
    """The UTC calendar day of a timestamp column (SQLite stores UTC text)."""
    if is_sqlite(bind):
        return sa.func.date(column)
    return sa.cast(sa.func.timezone("UTC", column), sa.Date)


# PostgreSQL has no built-in merge patch; the migration installs this one.
PG_MERGE_PATCH = """
CREATE OR REPLACE FUNCTION correlated_merge_patch(target jsonb, patch jsonb)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  result jsonb;
  k text;
  v jsonb;
BEGIN
  IF patch IS NULL OR jsonb_typeof(patch) <> 'object' THEN
    RETURN patch;
  END IF;
  IF target IS NULL OR jsonb_typeof(target) <> 'object' THEN
    result := '{}'::jsonb;
  ELSE
    result := target;
  END IF;
  FOR k, v IN SELECT key, value FROM jsonb_each(patch) LOOP
    IF jsonb_typeof(v) = 'null' THEN
      result := result - k;
    ELSE
      result := jsonb_set(result, ARRAY[k], correlated_merge_patch(result -> k, v), true);
    END IF;
  END LOOP;
  RETURN result;
END;
$$;
"""
