"""Dashboard speed: 10,000 accounts, 100,000 users, 1,000,000 events on SQLite and PostgreSQL.

    python bench/dashboard.py                      # both engines, writes docs/benchmarks.md
    python bench/dashboard.py --engines postgresql --no-write

The data set is written straight into the tables (COPY on PostgreSQL, executemany on SQLite)
because going through ingest would take most of an hour; the daily rollup is then rebuilt with
the same SQL the product uses (writes._rebuild). Only the benchmark writes tables directly.

Each page is timed through the Flask test client (server time: routing, SQL, pandas, plotly,
Jinja). Its "bare SQL" is the very statements the page sent, captured while it ran and replayed
on the raw DBAPI cursor: the gap between the two is everything the page adds on top of SQL.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from correlated import MIGRATIONS, create_app  # noqa: E402
from correlated.demo import FEATURES, INDUSTRIES, PLANS, REGIONS  # noqa: E402
from correlated.extensions import db  # noqa: E402
from correlated.workspaces import create_workspace  # noqa: E402
from bench_databases import recreate_postgres  # noqa: E402

ACCOUNTS, USERS, EVENTS, DAYS = 10_000, 100_000, 1_000_000, 90
EVENT_NAMES = ["sign_in", "feature_used", "report_created", "export_downloaded", "invite_sent"]
EVENT_WEIGHTS = [0.32, 0.48, 0.10, 0.07, 0.03]
PASSWORD = "benchmark password"
EMAIL = "bench@example.com"
POSTGRES = os.environ.get("CORRELATED_BENCH_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/correlated_bench_dashboard")
SQLITE = f"sqlite:///{ROOT / 'bench' / 'results' / 'dashboard.db'}"
TARGET_MS = 250
REPEAT = 5


# --- the data set ---------------------------------------------------------------------------

@dataclass
class DataSet:
    accounts: list[tuple]
    users: list[tuple]
    events: Iterator[tuple]


def generate(workspace_id: int, today: date, seed: int = 11) -> DataSet:
    """Accounts with realistic dimensions, ~10 users each, events on active user-days."""
    rng = np.random.default_rng(seed)
    now = datetime.now(timezone.utc)
    accounts = [_account(workspace_id, i, rng, now, today) for i in range(ACCOUNTS)]
    owner = rng.integers(0, ACCOUNTS, USERS)
    owner[:ACCOUNTS] = np.arange(ACCOUNTS)  # every account has at least one user
    users = [_user(workspace_id, j, int(a), rng, now) for j, a in enumerate(owner)]
    return DataSet(accounts, users, _events(workspace_id, owner, rng, today))


def _account(ws: int, i: int, rng: np.random.Generator, now: datetime, today: date) -> tuple:
    plan, base, _ = PLANS[int(rng.choice(len(PLANS), p=[0.15, 0.35, 0.35, 0.15]))]
    traits = {
        "domain": f"company{i}.example", "plan": plan, "industry": INDUSTRIES[i % len(INDUSTRIES)],
        "employees": int(rng.lognormal(5, 1.2)) + 5, "region": REGIONS[i % len(REGIONS)],
        "arr": round(base * float(rng.uniform(0.6, 1.8)), -2),
        "owner": ["Dana Scully", "Fox Mulder", "Walter Skinner", "Monica Reyes"][i % 4],
        "renewal_date": (today + timedelta(days=int(rng.integers(10, 360)))).isoformat(),
    }
    return (ws, f"acc_{i:05d}", f"Company {i:05d}", traits, now, now, None)


def _user(ws: int, j: int, account: int, rng: np.random.Generator, now: datetime) -> tuple:
    traits = {"first_name": f"First{j % 97}", "last_name": f"Last{j % 89}",
              "role": ["admin", "manager", "analyst", "viewer"][j % 4]}
    return (ws, f"user_{j:06d}", f"user{j}@company{account}.example", f"acc_{account:05d}",
            traits, now, now, None)


def _events(ws: int, owner: np.ndarray, rng: np.random.Generator,
            today: date) -> Iterator[tuple]:
    """~3 events per active user-day, accounts drifting up or down over the period."""
    per_day = 3.0
    user_days = int(EVENTS / per_day)
    trend = rng.uniform(-1, 1, ACCOUNTS)  # per account: shrinking (<0) or growing (>0)
    users = rng.integers(0, USERS, user_days * 3)
    offsets = rng.integers(0, DAYS, user_days * 3)
    # Keep a user-day with a probability that follows its account's trend over time.
    keep = rng.random(user_days * 3) < 0.5 + 0.4 * trend[owner[users]] * (offsets / DAYS - 0.5)
    spare = user_days + user_days // 10  # a few more than needed: stop at exactly EVENTS
    users, offsets = users[keep][:spare], offsets[keep][:spare]
    counts = rng.poisson(per_day - 1, len(users)) + 1
    start = datetime.combine(today - timedelta(days=DAYS - 1), datetime.min.time(), timezone.utc)
    serial = 0
    for user, offset, count in zip(users.tolist(), offsets.tolist(), counts.tolist()):
        names = rng.choice(len(EVENT_NAMES), count, p=EVENT_WEIGHTS)
        seconds = np.sort(rng.integers(7 * 3600, 20 * 3600, count))
        for name, second in zip(names.tolist(), seconds.tolist()):
            if serial >= EVENTS:
                return
            serial += 1
            at = start + timedelta(days=offset, seconds=second)
            props = {"feature": FEATURES[serial % len(FEATURES)]} if name == 1 else {}
            yield (ws, f"evt_{serial:07d}", EVENT_NAMES[name], f"user_{user:06d}",
                   f"acc_{int(owner[user]):05d}", False, at, props, at)


ACCOUNT_COLUMNS = ("workspace_id", "account_id", "name", "traits", "created_at", "updated_at",
                   "archived_at")
USER_COLUMNS = ("workspace_id", "user_id", "email", "account_id", "traits", "created_at",
                "updated_at", "archived_at")
EVENT_COLUMNS = ("workspace_id", "event_id", "event", "user_id", "account_id",
                 "account_inferred", "timestamp", "properties", "received_at")


def load(url: str, today: date) -> int:
    """A fresh database holding the data set; returns the workspace id."""
    app = make_app(url)
    with app.app_context():
        reset_schema(url)
        ws_id = create_workspace(db.session, "bench", EMAIL, PASSWORD).id
        db.session.commit()
        db.session.close()  # no read snapshot may outlive the bulk load (SQLite WAL)
        data = generate(ws_id, today)
        started = time.perf_counter()
        bulk_insert(url, data)
        rebuild_rollup(ws_id)
        vacuum(url)
        print(f"  loaded in {time.perf_counter() - started:.0f}s", file=sys.stderr)
        return ws_id


def make_app(url: str):
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
                       "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False})


def reset_schema(url: str) -> None:
    from flask_migrate import upgrade

    if url.startswith("sqlite"):
        path = Path(sa.engine.make_url(url).database)
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    else:
        recreate_postgres(url)
    db.engine.dispose()
    upgrade(directory=str(MIGRATIONS))


def bulk_insert(url: str, data: DataSet) -> None:
    tables = [("accounts", ACCOUNT_COLUMNS, data.accounts), ("users", USER_COLUMNS, data.users),
              ("events", EVENT_COLUMNS, data.events)]
    raw = db.engine.raw_connection()
    try:
        for table, columns, rows in tables:
            if url.startswith("sqlite"):
                _sqlite_insert(raw, table, columns, rows)
            else:
                _copy(raw, table, columns, rows)
        raw.commit()
    finally:
        raw.close()


def _copy(raw: Any, table: str, columns: tuple, rows: Any) -> None:
    with raw.cursor() as cur:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([json.dumps(v) if isinstance(v, dict) else v for v in row])


def _sqlite_insert(raw: Any, table: str, columns: tuple, rows: Any) -> None:
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    cur = raw.cursor()
    cur.execute("BEGIN")
    batch: list[tuple] = []
    for row in rows:
        batch.append(tuple(_sqlite_value(v) for v in row))
        if len(batch) == 50_000:
            cur.executemany(sql, batch)
            batch = []
    cur.executemany(sql, batch)
    cur.execute("COMMIT")


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def rebuild_rollup(workspace_id: int) -> None:
    """The whole daily_activity table, by the product's own rebuild statement."""
    from correlated.ingest.engine import writes

    writes._rebuild(db.session, workspace_id, sa.true(), sa.true())
    db.session.commit()


def vacuum(url: str) -> None:
    """PostgreSQL as autovacuum would leave it. SQLite gets no ANALYZE: nothing in the product
    runs it, so its planner works without statistics there too."""
    if url.startswith("sqlite"):
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))


# --- timing ---------------------------------------------------------------------------------

# (page, what it shows)
PAGES = [
    ("/", "overview: KPIs, daily actives, events by name, top and dropped accounts"),
    ("/accounts", "accounts, default order (name), metrics for the 25 shown"),
    ("/accounts?sort=events_30d&dir=desc", "accounts sorted by events 30d"),
    ("/accounts?sort=last_seen&dir=desc", "accounts sorted by last seen (all time)"),
    ("/accounts?field=active_users_30d&op=lt&value=2", "accounts with active users 30d < 2"),
    ("/accounts?field=plan&op=eq&value=enterprise&field=arr&op=gt&value=100000&sort=arr&dir=desc",
     "accounts filtered on two dimensions, sorted by ARR"),
    ("/accounts?q=0042", "accounts search"),
    ("/accounts/acc_00042", "one account: dimensions, users, charts, metrics per event"),
    ("/users", "users, default order (email)"),
    ("/users?sort=events_30d&dir=desc", "users sorted by events 30d (100k users)"),
    ("/users/user_000042", "one user: timeline, chart, metrics per event"),
    ("/events", "events: 90-day chart, per-name table, top event's trend and breakdown"),
    ("/events?event=report_created&by=industry", "one event broken down by industry"),
    ("/fields", "account field catalog with usage counts (10k accounts)"),
    ("/fields?object=user", "user field catalog with usage counts (100k users)"),
    ("/fields?object=event", "event field catalog (newest 10k events)"),
]


@dataclass
class Timing:
    path: str
    what: str
    statements: int
    sql_ms: float
    page_ms: float

    @property
    def ratio(self) -> float:
        return self.page_ms / self.sql_ms if self.sql_ms else float("inf")


@dataclass
class Capture:
    """The statements sent while a page was served, to replay them bare."""

    statements: list[tuple[str, Any]] = field(default_factory=list)
    active: bool = False

    def __call__(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self.active:
            self.statements.append((statement, parameters))


def time_pages(url: str, repeat: int = REPEAT) -> list[Timing]:
    app = make_app(url)
    with app.app_context():
        engine = db.engine
    # Requests run outside any app context, as on a server: each gets its own `g`.
    capture = Capture()
    sa.event.listen(engine, "before_cursor_execute", capture)
    client = app.test_client()
    response = client.post("/login", data={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 302, "benchmark login failed"
    results = [_time_page(client, engine, capture, path, what, repeat) for path, what in PAGES]
    sa.event.remove(engine, "before_cursor_execute", capture)
    engine.dispose()
    return results


def _time_page(client, engine: sa.Engine, capture: Capture, path: str, what: str,
               repeat: int) -> Timing:
    client.get(path)  # warm: caches, compiled statements, pages in the buffer pool
    capture.statements, capture.active = [], True
    response = client.get(path)
    capture.active = False
    assert response.status_code == 200, f"{path}: {response.status_code}"
    statements = list(capture.statements)
    page = [_elapsed(lambda: client.get(path).get_data()) for _ in range(repeat)]
    bare = [_replay(engine, statements) for _ in range(repeat)]
    timing = Timing(path, what, len(statements), statistics.median(bare),
                    statistics.median(page))
    print(f"  {timing.page_ms:7.1f} ms page  {timing.sql_ms:7.1f} ms SQL  {path}", file=sys.stderr)
    return timing


def _elapsed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def _replay(engine: sa.Engine, statements: list[tuple[str, Any]]) -> float:
    """Run the captured statements on the raw DBAPI cursor, fetching every row; ms."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        started = time.perf_counter()
        for statement, parameters in statements:
            cursor.execute(statement, parameters)
            if cursor.description is not None:
                cursor.fetchall()
        elapsed = (time.perf_counter() - started) * 1000
        raw.rollback()
        return elapsed
    finally:
        raw.close()


# --- keeping the summaries fresh -------------------------------------------------------------

SYNC_ROWS = 1_000


def time_refresh(url: str, today: date, seed: int = 5) -> list[tuple[str, float]]:
    """What keeping the summaries (summaries.py) fresh costs, in ms: building them from the
    whole rollup, the first view of a new day, and the first view after a sync."""
    from correlated.analytics import summaries
    from correlated.ingest.engine import ingest
    from correlated.models import SummaryState, Workspace

    app = make_app(url)
    out = []
    with app.app_context():
        session = db.session
        workspace = session.scalar(sa.select(Workspace).where(Workspace.name == "bench"))
        ws = workspace.id
        session.execute(sa.delete(SummaryState).where(SummaryState.workspace_id == ws))
        session.commit()
        out.append(("first view after loading the data set (everything built)",
                    _elapsed(lambda: summaries.ensure_fresh(session, ws, today))))
        summaries.ensure_fresh(session, ws, today - timedelta(days=1))
        out.append(("first view of a new day (windows move by one day)",
                    _elapsed(lambda: summaries.ensure_fresh(session, ws, today))))
        rng = np.random.default_rng(seed)
        users = rng.integers(0, USERS, SYNC_ROWS).tolist()
        now = datetime.now(timezone.utc)
        rows = [{"event": EVENT_NAMES[int(rng.integers(0, len(EVENT_NAMES)))],
                 "user_id": f"user_{u:06d}", "timestamp": (now - timedelta(
                     seconds=int(rng.integers(0, 3600)))).isoformat()} for u in users]
        took = _elapsed(lambda: ingest(session, workspace, "event", "insert", rows,
                                       protocol=None))
        out.append((f"ingest of {SYNC_ROWS:,} events for {SYNC_ROWS:,} random users "
                    f"(for scale)", took))
        out.append((f"first view after that sync ({SYNC_ROWS:,} users, their accounts, "
                    f"today recomputed)",
                    _elapsed(lambda: summaries.ensure_fresh(session, ws, today))))
        out.append(("any later view (nothing changed: one lookup)", statistics.median(
            _elapsed(lambda: summaries.ensure_fresh(session, ws, today)) for _ in range(REPEAT))))
        db.engine.dispose()
    for what, ms in out:
        print(f"  {ms:9.1f} ms  {what}", file=sys.stderr)
    return out


# --- report ---------------------------------------------------------------------------------

def table_sizes(url: str) -> dict[str, int]:
    app = make_app(url)
    with app.app_context():
        with db.engine.connect() as conn:
            sizes = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
                     for t in ("accounts", "users", "events", "daily_activity")}
        db.engine.dispose()
    return sizes


def render(results: dict[str, list[Timing]], refreshes: dict[str, list[tuple[str, float]]],
           sizes: dict[str, int], machine: str) -> str:
    lines = [
        "## Dashboards",
        "",
        f"Measured by `python bench/dashboard.py` on {machine}: {sizes['accounts']:,} accounts, "
        f"{sizes['users']:,} users, {sizes['events']:,} events over {DAYS} days "
        f"({sizes['daily_activity']:,} rows in the `daily_activity` rollup). "
        f"Page = server time through the Flask test client (SQL, pandas, plotly, Jinja), median "
        f"of {REPEAT}. SQL = the same statements the page sent, replayed bare on the DBAPI "
        f"cursor (median of {REPEAT}). Target: page within 2x of its SQL and under "
        f"{TARGET_MS} ms on PostgreSQL.",
        "",
    ]
    for engine, timings in results.items():
        lines += [f"### {engine}", "",
                  "| page | shows | statements | SQL ms | page ms | page / SQL | target |",
                  "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for t in timings:
            verdict = _verdict(t, engine)
            lines.append(f"| `{t.path}` | {t.what} | {t.statements} | {t.sql_ms:.1f} | "
                         f"{t.page_ms:.1f} | {t.ratio:.2f} | {verdict} |")
        lines.append("")
    lines += ["### Keeping the summaries fresh", "",
              "Pages read `account_metrics`, `user_metrics`, `daily_summary` and `daily_events` "
              "(summaries.py), refreshed from the rollup by the first view after something "
              "changed; the page timings above are views after that. What the refresh costs:",
              "", "| refresh | " + " | ".join(f"{e} ms" for e in refreshes) + " |",
              "| --- |" + " ---: |" * len(refreshes)]
    names = [what for what, _ in next(iter(refreshes.values()), [])]
    for i, what in enumerate(names):
        lines.append(f"| {what} | " + " | ".join(f"{r[i][1]:.1f}" for r in refreshes.values())
                     + " |")
    lines.append("")
    return "\n".join(lines)


def _verdict(t: Timing, engine: str) -> str:
    within = t.ratio <= 2
    if engine != "postgresql":
        return "ok (2x)" if within else "over 2x"
    if within and t.page_ms <= TARGET_MS:
        return "met"
    reasons = ([] if within else ["over 2x"]) + ([] if t.page_ms <= TARGET_MS
                                                 else [f"over {TARGET_MS} ms"])
    return "missed: " + ", ".join(reasons)


def write_section(section: str, path: Path = ROOT / "docs" / "benchmarks.md") -> None:
    """Replace (or append) the `## Dashboards` section, leaving the other sections alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Dashboards\n.*?(?=^## |\Z)", re.S | re.M)
    notes = _kept_notes(text)
    body = section.rstrip() + "\n" + (notes or "") + "\n"
    if pattern.search(text):
        text = pattern.sub(lambda _m: body, text)
    else:
        text = text.rstrip() + "\n\n" + body
    path.write_text(text)


def _kept_notes(text: str) -> str | None:
    """Hand-written analysis under `### Notes` in the section survives a re-run."""
    match = re.search(r"^## Dashboards\n.*?(^### Notes\n.*?)(?=^## |\Z)", text, re.S | re.M)
    return "\n" + match.group(1).rstrip() + "\n" if match else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["postgresql", "sqlite"],
                        choices=["postgresql", "sqlite"])
    parser.add_argument("--reuse", action="store_true",
                        help="time the data set already loaded (same day) instead of reloading")
    parser.add_argument("--no-write", action="store_true", help="print, don't touch the docs")
    args = parser.parse_args()
    urls = {"postgresql": POSTGRES, "sqlite": SQLITE}
    today = datetime.now(timezone.utc).date()
    results, refreshes, sizes = {}, {}, {}
    for engine in args.engines:
        print(f"{engine}:", file=sys.stderr)
        if not args.reuse:
            load(urls[engine], today)
        refreshes[engine] = time_refresh(urls[engine], today)
        results[engine] = time_pages(urls[engine])
        sizes = table_sizes(urls[engine])
    section = render(results, refreshes, sizes, _machine())
    print(section)
    if not args.no_write:
        write_section(section)


def _machine() -> str:
    cores = os.cpu_count()
    return f"{cores} CPU cores, PostgreSQL and SQLite on the same host (default settings)"


if __name__ == "__main__":
    main()
