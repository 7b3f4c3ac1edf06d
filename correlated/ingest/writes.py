"""Set-based SQL behind the ingest engine: a few statements per batch, never one per row."""
from __future__ import annotations

import zlib
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import database
from . import fields, history
from ..analytics import summaries
from ..database import chunks
from ..models import RECORDS, DailyActivity, Event, Field, User, utcnow
from ..vocabulary import ID_FIELD
from .contract import Options, Record, Rejection, Result

TRAITS = {"account": "traits", "user": "traits", "event": "properties"}
ATTRIBUTION_LOCKS = 0x7573  # the advisory-lock namespace of users' account attribution
ATTRIBUTION_BUCKETS = 256  # keys per workspace: bounds the locks one transaction holds


def add_fields(session: Session, workspace_id: int, obj: str, new: dict[str, str]) -> None:
    """Register custom fields first seen in this batch (a concurrent writer may add them too)."""
    rows = [{"workspace_id": workspace_id, "object": obj, "key": key, "label": fields.label_for(key),
             "type": typ, "is_default": False} for key, typ in sorted(new.items())]
    stmt = database.insert(session.connection(), Field.__table__)
    session.execute(stmt.on_conflict_do_nothing(), rows)


def apply(session: Session, workspace_id: int, obj: str, operation: str,
          records: list[Record], options: Options, result: Result) -> None:
    if not records:
        return
    if operation == "remove":
        _remove(session, workspace_id, obj, records, options, result)
    elif obj == "event":
        _insert_events(session, workspace_id, records, result)
    else:
        _upsert_profiles(session, workspace_id, obj, operation, records, result)


def existing(session: Session, workspace_id: int, obj: str, ids: Sequence[str],
             *columns: str | sa.ColumnElement, for_update: bool = False) -> dict[str, tuple]:
    """The rows of `obj` among `ids`: id -> (columns...); `for_update` locks them (in ID order)
    until the transaction ends (PostgreSQL; SQLite's writer holds the whole database)."""
    table = RECORDS[obj]
    key = table.c[ID_FIELD[obj]]
    found: dict[str, tuple] = {}
    for part in chunks(ids):
        query = sa.select(key, *(table.c[c] if isinstance(c, str) else c for c in columns)).where(
            table.c.workspace_id == workspace_id, key.in_(part))
        if for_update:
            query = query.order_by(key).with_for_update()
        for row in session.execute(query):
            found[row[0]] = tuple(row[1:])
    return found


# --- accounts and users ---------------------------------------------------------------------

def _upsert_profiles(session: Session, workspace_id: int, obj: str, operation: str,
                     records: list[Record], result: Result) -> None:
    # One read of the stored rows serves the upsert (which exist, a user's account) and the
    # dimension history (what the batch changes). Users given an account are locked as read, so
    # a concurrent move of the same user waits and then sees this one's account.
    columns = tuple(dict.fromkeys((("account_id",) if obj == "user" else ())
                                  + history.columns(obj)))
    moving = obj == "user" and any("account_id" in r.core for r in records)
    before = _read_before(session, workspace_id, obj, [r.id for r in records], columns, moving)
    if operation == "update":
        missing = [r for r in records if r.id not in before]
        for r in missing:
            result.rejected.append(Rejection(r.index, r.id, f"no {obj} with {ID_FIELD[obj]} {r.id}"))
        result.accepted -= len(missing)
        records = [r for r in records if r.id in before]
    if moving:
        before.update(_lock_moves(session, workspace_id, records, before))
    now = utcnow()
    new = [r for r in records if r.id not in before]
    old = [r for r in records if r.id in before]
    history.record(session, workspace_id, obj, old, new, before, now)
    # New rows get their dimensions without nulls; known rows get the nulls too, which clear.
    _write_profiles(session, workspace_id, obj, new, now, strip_nulls=True)
    _write_profiles(session, workspace_id, obj, old, now, strip_nulls=False)
    result.created += len(new)
    result.updated += len(old)
    if obj == "user":
        moved = _moves(records, before)
        if moved:
            reattribute(session, workspace_id, moved)


def _read_before(session: Session, workspace_id: int, obj: str, ids: Sequence[str],
                 columns: tuple[str, ...], for_update: bool) -> dict[str, dict[str, Any]]:
    """id -> {column: stored value} of the rows among `ids`."""
    # The traits read as text and parsed by orjson: the drivers' json.loads of every row was
    # half of what the dimension history added to this read.
    select = [sa.cast(RECORDS[obj].c.traits, sa.Text) if c == "traits" else c for c in columns]
    rows = {key: dict(zip(columns, row)) for key, row in
            existing(session, workspace_id, obj, ids, *select, for_update=for_update).items()}
    if "traits" in columns:
        for row in rows.values():
            row["traits"] = None if row["traits"] is None else orjson.loads(row["traits"])
    return rows


def _moves(records: list[Record], before: dict[str, dict[str, Any]]) -> list[str]:
    """Users given an account other than the one they have (new users included)."""
    return [r.id for r in records if "account_id" in r.core
            and (r.id not in before or before[r.id]["account_id"] != r.core["account_id"])]


def _lock_moves(session: Session, workspace_id: int, records: list[Record],
                before: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Take the attribution locks of the users this batch moves; the users among them another
    writer created meanwhile (they were not there to lock when read), read again."""
    moved = _moves(records, before)
    if not lock_attribution(session, workspace_id, moved, shared=False):
        return {}
    new = [uid for uid in moved if uid not in before]
    columns = tuple(dict.fromkeys(("account_id",) + history.columns("user")))
    return _read_before(session, workspace_id, "user", new, columns, True) if new else {}


def lock_attribution(session: Session, workspace_id: int, user_ids: Sequence[str],
                     shared: bool) -> bool:
    """PostgreSQL: the advisory locks (until commit) that order, per user, storing events that
    take their account from the user (shared) and moving the user (exclusive), so no event is
    stored with an account its user just left. Under READ COMMITTED neither would see the
    other's uncommitted rows. Keys in sorted order, so writers queue instead of deadlocking;
    SQLite has one writer at a time. Returns whether locks were taken."""
    bind = session.connection()
    if not user_ids or database.is_sqlite(bind):
        return False
    base = (workspace_id % 2**22) * ATTRIBUTION_BUCKETS
    keys = sorted({base + zlib.crc32(uid.encode()) % ATTRIBUTION_BUCKETS for uid in user_ids})
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    session.execute(sa.text(f"SELECT count({function}(CAST(:space AS integer), key)) "
                            "FROM unnest(CAST(:keys AS integer[])) AS k(key)"),
                    {"space": ATTRIBUTION_LOCKS, "keys": keys})
    return True


def _write_profiles(session: Session, workspace_id: int, obj: str, records: list[Record],
                    now: datetime, strip_nulls: bool) -> None:
    """One INSERT .. ON CONFLICT DO UPDATE per group of rows giving the same core columns."""
    groups: dict[tuple[str, ...], list[Record]] = defaultdict(list)
    for record in records:
        groups[tuple(sorted(k for k in record.core if k != ID_FIELD[obj]))].append(record)
    table = RECORDS[obj]
    bind = session.connection()
    for given, group in sorted(groups.items()):
        # executemany: SQLAlchemy batches it into multi-row VALUES with a cached compilation
        values = [_profile_values(workspace_id, obj, r, now, strip_nulls) for r in group]
        stmt = database.insert(bind, table)
        update = {c: stmt.excluded[c] for c in given}
        update.update(
            traits=database.merge_patch(bind, table.c.traits, stmt.excluded.traits),
            updated_at=stmt.excluded.updated_at,
            archived_at=None,  # a sync restores an archived record
        )
        session.execute(stmt.on_conflict_do_update(
            index_elements=["workspace_id", ID_FIELD[obj]], set_=update), values)


def _profile_values(workspace_id: int, obj: str, record: Record, now: datetime,
                    strip_nulls: bool) -> dict[str, Any]:
    values = {"workspace_id": workspace_id, ID_FIELD[obj]: record.id, "created_at": now,
              "updated_at": now, "archived_at": None,
              "traits": strip(record.attrs) if strip_nulls else record.attrs}
    values.update({k: v for k, v in record.core.items() if k != ID_FIELD[obj]})
    if obj == "account" and values.get("name") is None:
        values["name"] = ""  # update-only rows without a name never insert (they exist)
    return values


def strip(value: dict[str, Any]) -> dict[str, Any]:
    """Nulls removed at every depth, as a merge patch onto {} would."""
    return {k: strip(v) if isinstance(v, dict) else v for k, v in value.items() if v is not None}


def reattribute(session: Session, workspace_id: int, user_ids: list[str]) -> None:
    """Events that took their account from a user follow the user to its new account."""
    users = User.__table__
    events = Event.__table__
    account_of_user = (
        sa.select(users.c.account_id)
        .where(users.c.workspace_id == events.c.workspace_id, users.c.user_id == events.c.user_id)
        .scalar_subquery()
    )
    for part in chunks(user_ids):
        session.execute(
            sa.update(events)
            .where(events.c.workspace_id == workspace_id, events.c.account_inferred.is_(True),
                   events.c.user_id.in_(part))
            .values(account_id=account_of_user)
        )
    rebuild_activity(session, workspace_id, user_ids)


# --- events ---------------------------------------------------------------------------------

def _insert_events(session: Session, workspace_id: int, records: list[Record],
                   result: Result) -> None:
    need_account = sorted({r.core["user_id"] for r in records
                           if r.core.get("account_id") is None and r.core.get("user_id")})
    lock_attribution(session, workspace_id, need_account, shared=True)  # before reading them
    accounts = {uid: acc for uid, (acc,) in
                existing(session, workspace_id, "user", need_account, "account_id").items()}
    now = utcnow()
    values = [_event_values(workspace_id, r, accounts, now) for r in records]
    if database.is_sqlite(session.connection()):
        inserted = _store_events_sqlite(session, workspace_id, values)
        add_activity(session, workspace_id, inserted)
        created = len(inserted)
    else:
        created = _store_events_postgres(session, values)
    result.created += created
    result.duplicates += len(records) - created


def _store_events_sqlite(session: Session, workspace_id: int,
                         values: list[dict[str, Any]]) -> list[tuple]:
    """executemany of the events not stored yet; their (timestamp, account, user, event).

    SQLite serializes writers: this transaction either holds the write lock when it inserts or
    fails and is retried, so the IDs found here are exactly those the INSERT would skip. That
    lets sqlite3's executemany do the work, several times faster than INSERT .. RETURNING.
    """
    known = existing(session, workspace_id, "event", [v["event_id"] for v in values])
    new = [v for v in values if v["event_id"] not in known]
    if new:
        stmt = database.insert(session.connection(), Event.__table__)
        session.execute(stmt.on_conflict_do_nothing(
            index_elements=["workspace_id", "event_id"]), new)
    return [(v["timestamp"], v["account_id"], v["user_id"], v["event"]) for v in new]


def _store_events_postgres(session: Session, values: list[dict[str, Any]]) -> int:
    """COPY, then one statement that stores the new events and folds them into the daily
    roll-up (the same sums as `add_activity`, without a trip through Python); returns how many
    events were new."""
    columns = ", ".join(values[0])
    staging = stage(session, Event.__table__, values)
    created = session.execute(sa.text(EVENTS_AND_ACTIVITY.format(columns=columns, staging=staging))
                              ).scalar_one()
    if created:
        session.execute(sa.text(summaries.MARK_STAGED_EVENTS.format(staging=staging)))
    return created


EVENTS_AND_ACTIVITY = """
WITH new AS (
    INSERT INTO events ({columns}) SELECT {columns} FROM {staging} ORDER BY workspace_id, event_id
    ON CONFLICT (workspace_id, event_id) DO NOTHING
    RETURNING workspace_id, timestamp, account_id, user_id, event
), activity AS (
    INSERT INTO daily_activity (workspace_id, day, account_id, user_id, event, count, last_at)
    SELECT workspace_id, CAST(timezone('UTC', timestamp) AS DATE), coalesce(account_id, ''),
           coalesce(user_id, ''), event, count(*), max(timestamp)
    FROM new GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (workspace_id, day, account_id, user_id, event) DO UPDATE SET
        count = daily_activity.count + excluded.count,
        last_at = greatest(daily_activity.last_at, excluded.last_at)
)
SELECT count(*) FROM new
"""


def stage(session: Session, table: sa.Table, values: list[dict[str, Any]]) -> str:
    """PostgreSQL bulk load: COPY the rows into a temporary twin of `table` (no indexes) that
    lives as long as the connection and empties itself at each commit; returns its name.

    Faster than the alternatives measured: a multi-row VALUES text is parsed anew by psycopg
    on every call, unnest() arrays are slow to bind; COPY is PostgreSQL's own bulk path.
    """
    columns = list(values[0])
    json_columns = {c for c in columns if isinstance(table.c[c].type, sa.JSON)}
    staging = f"incoming_{table.name}"
    with session.connection().connection.dbapi_connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
                       f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS; "
                       f"DELETE FROM {staging}")  # an earlier batch of this transaction
        with cursor.copy(f"COPY {staging} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in values:
                copy.write_row([database.json_dumps(row[c]) if c in json_columns and row[c]
                                is not None else row[c] for c in columns])
    return staging


def _event_values(workspace_id: int, record: Record, accounts: dict[str, str | None],
                  now: datetime) -> dict[str, Any]:
    core = record.core
    inferred = core.get("account_id") is None
    account = accounts.get(core.get("user_id")) if inferred else core["account_id"]
    return {"workspace_id": workspace_id, "event_id": record.id, "event": core["event"],
            "user_id": core.get("user_id"), "account_id": account,
            "account_inferred": inferred and bool(core.get("user_id")),
            "timestamp": core["timestamp"], "properties": strip(record.attrs), "received_at": now}


def add_activity(session: Session, workspace_id: int, rows: Sequence[tuple]) -> None:
    """Fold newly stored events (timestamp, account, user, event) into the daily rollup."""
    if not rows:
        return
    totals: dict[tuple, list] = {}
    for ts, account_id, user_id, name in rows:
        ts = as_utc(ts)
        key = (ts.date(), account_id or "", user_id or "", name)
        entry = totals.setdefault(key, [0, ts])
        entry[0] += 1
        entry[1] = max(entry[1], ts)
    table = DailyActivity.__table__
    bind = session.connection()
    values = [{"workspace_id": workspace_id, "day": k[0], "account_id": k[1], "user_id": k[2],
               "event": k[3], "count": c, "last_at": last} for k, (c, last) in sorted(totals.items())]
    stmt = database.insert(bind, table)
    session.execute(stmt.on_conflict_do_update(
        index_elements=["workspace_id", "day", "account_id", "user_id", "event"],
        set_={"count": table.c.count + stmt.excluded["count"],
              "last_at": database.greatest(bind, table.c.last_at, stmt.excluded.last_at)}), values)
    summaries.mark_stale(session, workspace_id, accounts={k[1] for k in totals},
                         users={k[2] for k in totals}, days={k[0] for k in totals})


def rebuild_activity(session: Session, workspace_id: int, user_ids: Sequence[str]) -> None:
    """Recompute the rollup rows of these users from their events."""
    rollup, events = DailyActivity.__table__, Event.__table__
    for part in chunks(list(user_ids)):
        _rebuild(session, workspace_id, rollup.c.user_id.in_(part), events.c.user_id.in_(part))


def _rebuild(session: Session, workspace_id: int, rollup_filter: Any, event_filter: Any) -> None:
    rollup, events = DailyActivity.__table__, Event.__table__
    day = database.day(session.connection(), events.c.timestamp)
    account = sa.func.coalesce(events.c.account_id, "")
    user = sa.func.coalesce(events.c.user_id, "")
    # What the rows held before and hold after both go stale (a user may change account).
    summaries.mark_stale_rollup(session, workspace_id, rollup_filter)
    session.execute(sa.delete(rollup).where(rollup.c.workspace_id == workspace_id, rollup_filter))
    select = (
        sa.select(events.c.workspace_id, day, account, user, events.c.event,
                  sa.func.count(), sa.func.max(events.c.timestamp))
        .where(events.c.workspace_id == workspace_id, event_filter)
        .group_by(events.c.workspace_id, day, account, user, events.c.event)
    )
    session.execute(sa.insert(rollup).from_select(
        ["workspace_id", "day", "account_id", "user_id", "event", "count", "last_at"], select))
    summaries.mark_stale_rollup(session, workspace_id, rollup_filter)


def as_utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


# --- removal --------------------------------------------------------------------------------

def _remove(session: Session, workspace_id: int, obj: str, records: list[Record],
            options: Options, result: Result) -> None:
    table = RECORDS[obj]
    key = table.c[ID_FIELD[obj]]
    ids = [r.id for r in records]
    for part in chunks(ids):
        where = (table.c.workspace_id == workspace_id, key.in_(part))
        if obj == "event":
            gone = session.execute(sa.delete(table).where(*where).returning(table.c.user_id)).all()
            rebuild_activity(session, workspace_id, sorted({u for (u,) in gone if u}))
            _rebuild_userless(session, workspace_id, gone)
        elif options.remove_action == "delete":
            gone = session.execute(sa.delete(table).where(*where).returning(key)).all()
        else:
            gone = session.execute(sa.update(table).where(*where, table.c.archived_at.is_(None))
                                   .values(archived_at=utcnow()).returning(key)).all()
        if obj != "event":
            history.removed(session, workspace_id, obj, [k for (k,) in gone])
        result.removed += len(gone)


def _rebuild_userless(session: Session, workspace_id: int, gone: Sequence[tuple]) -> None:
    """Account-only events (no user) have their own rollup rows."""
    if any(u is None for (u,) in gone):
        rollup, events = DailyActivity.__table__, Event.__table__
        _rebuild(session, workspace_id, rollup.c.user_id == "", events.c.user_id.is_(None))
