"""Signals benchmark (in-process, through the engine and the evaluator), SQLite and PostgreSQL:

1. account upserts with dimension history on vs off (10k accounts created, then 10k updated
   with a fifth changing plan), rows per second;
2. full evaluation of the demo signals plus mixed ones on a demo workspace of --accounts
   accounts: milliseconds per signal (each one SQL statement set, one transaction).

    PYTHONPATH=. python bench/signals.py --accounts 300
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import sqlalchemy as sa

from correlated import MIGRATIONS, create_app, database
from correlated.extensions import db
from correlated.ingest import history
from correlated.ingest.engine import ingest
from correlated.models import utcnow
from correlated.workspaces import create_workspace

PG = os.environ.get("CORRELATED_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
EXTRA = [
    {"name": "m1", "conditions": [{"metric": "days_since_last_seen", "op": "gte", "value": 7}]},
    {"name": "m2", "conditions": [{"metric": "active_days", "window_days": 30, "op": "gte", "value": 10}]},
    {"name": "m3", "conditions": [{"field": "employees", "op": "between", "value": [50, 500]},
                                  {"field": "region", "op": "ne", "value": "EMEA"}]},
    {"name": "m4", "conditions": [{"field": "plan", "changed_to": "enterprise", "within_days": 7}]},
]


def databases():
    folder = tempfile.mkdtemp()
    yield "SQLite", f"sqlite:///{folder}/bench.db"
    admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS bench_signals WITH (FORCE)"))
        conn.execute(sa.text("CREATE DATABASE bench_signals"))
    yield "PostgreSQL", sa.engine.make_url(PG).set(database="bench_signals").render_as_string(False)


def upsert_rate(ws, n: int, enabled: bool, tag: str) -> float:
    history.ENABLED = enabled
    rows = [{"account_id": f"{tag}{i}", "name": f"A {i}", "plan": "free", "seats": i % 50}
            for i in range(n)]
    changed = [{**r, "plan": "pro" if i % 5 == 0 else "free", "seats": i % 50}
               for i, r in enumerate(rows)]
    analyze()
    started = time.perf_counter()
    for batch in (rows, changed):
        for s in range(0, n, 1000):
            ingest(db.session, ws, "account", "upsert", batch[s:s + 1000])
    history.ENABLED = True
    return 2 * n / (time.perf_counter() - started)


def analyze() -> None:
    """Fresh planner statistics before each timed run, as autovacuum keeps them in a running
    deployment. Without them, PostgreSQL plans the 500-ID IN lists of a table that grew by
    10,000 rows seconds ago as if it were empty (a scan of the workspace's rows per list),
    and whichever run comes later looks slower."""
    if not database.is_sqlite(db.engine):
        db.session.execute(sa.text("ANALYZE accounts; ANALYZE stale_keys; ANALYZE dimension_changes"))
        db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--upserts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from flask_migrate import upgrade
    from correlated.analytics.summaries import ensure_fresh
    from correlated.demo import load_demo
    from correlated.signals import evaluate, service
    from correlated.signals.demo import DEMO_SIGNALS

    for label, url in databases():
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
        with app.app_context():
            upgrade(directory=str(MIGRATIONS))
            ws = create_workspace(db.session, "bench")
            db.session.commit()
            rates = {}
            for enabled in (False, True) * args.rounds:  # interleaved: drift evens out
                rates.setdefault(enabled, []).append(
                    upsert_rate(ws, args.upserts, enabled, f"{enabled}{len(rates)}-{time.time()}"))
            off, on = statistics.median(rates[False]), statistics.median(rates[True])
            print(f"{label}: account upserts {off:,.0f}/s without history, {on:,.0f}/s with "
                  f"({(on / off - 1) * 100:+.1f}%)")
            demo = create_workspace(db.session, "demo")
            db.session.commit()
            counts = load_demo(db.session, demo, accounts=args.accounts, with_signals=False)
            ensure_fresh(db.session, demo.id)
            ids = [service.create(db.session, demo.id, b).id for b in DEMO_SIGNALS + EXTRA]
            db.session.commit()
            started = time.perf_counter()
            for sid in ids:
                evaluate.run(db.session, demo.id, sid, utcnow(), force=True)
            took = (time.perf_counter() - started) * 1000
            print(f"{label}: {counts} -> {len(ids)} signals fully evaluated in {took:.0f} ms "
                  f"({took / len(ids):.0f} ms each)")
            db.session.remove()
            db.engine.dispose()


if __name__ == "__main__":
    main()
