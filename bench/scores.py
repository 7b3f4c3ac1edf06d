"""Scores benchmark (in-process), SQLite and PostgreSQL: a 6-input model over --accounts
accounts computed for every account (the SELECT, the values and today's history written, one
transaction), against the bare SQL of the same inputs (the raw-values SELECT alone, fetched);
the incremental recompute after a 1,000-event sync (what the worker does: the summaries'
refresh, then `compute_due`); and the accounts list sorted by the score against by name.

    PYTHONPATH=. python bench/scores.py --accounts 10000 --events 300000
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import timedelta

import sqlalchemy as sa

from correlated import MIGRATIONS, create_app
from correlated.extensions import db
from correlated.ingest.engine import ingest
from correlated.models import utcnow
from correlated.workspaces import create_workspace
from bench_databases import recreate_postgres

PG = os.environ.get("CORRELATED_BENCH_POSTGRES_URL",
                    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BANDS = {"type": "bands", "bands": [{"max": 1, "points": 1}, {"max": 7, "points": 0.5},
                                    {"points": 0}]}
MODEL = {"name": "bench", "inputs": [
    {"source": {"field": "plan"}, "transform": {"type": "map", "values": {
        "enterprise": 1, "pro": 0.7, "starter": 0.4}, "default": 0.1}, "weight": 2},
    {"source": {"field": "employees"}, "transform": {"type": "minmax", "clip": [5, 95]}},
    {"source": {"metric": "days_since_last_seen"}, "transform": BANDS, "weight": 2},
    {"source": {"metric": "active_user_share", "window_days": 30},
     "transform": {"type": "bands", "bands": [{"max": 0.3, "points": 0},
                                              {"max": 0.7, "points": 0.5},
                                              {"points": 1}]}},
    {"source": {"metric": "events", "window_days": 30, "compare": "previous"},
     "transform": {"type": "bands", "bands": [{"max": -30, "points": 0}, {"max": 0, "points": 0.5},
                                              {"points": 1}]}, "weight": 3},
    {"source": {"metric": "active_days", "window_days": 30}, "transform": "minmax"}],
    "tiers": [{"name": "A", "min": 75}, {"name": "B", "min": 50}, {"name": "C", "min": 0}]}


def databases():
    folder = tempfile.mkdtemp()
    yield "SQLite", f"sqlite:///{folder}/bench.db"
    yield "PostgreSQL", recreate_postgres(sa.engine.make_url(PG).set(database="bench_scores"))


def load(ws, accounts: int, events: int) -> None:
    rnd = random.Random(5)
    plans = ["free", "starter", "pro", "enterprise"]
    rows = [{"account_id": f"a{i}", "name": f"Account {i}", "plan": plans[i % 4],
             "employees": int(rnd.lognormvariate(5, 1)) + 5} for i in range(accounts)]
    users = [{"user_id": f"u{i}", "email": f"u{i}@x.example", "account_id": f"a{i % accounts}"}
             for i in range(accounts * 3)]
    for obj, batch in (("account", rows), ("user", users)):
        for s in range(0, len(batch), 5000):
            ingest(db.session, ws, obj, "upsert", batch[s:s + 5000], protocol=None)
    now = utcnow()
    names = ["sign_in", "report_created", "export"]
    for s in range(0, events, 10_000):
        chunk = [{"event_id": f"e{n}", "event": names[n % 3],
                  "user_id": f"u{int(rnd.paretovariate(1.2) * 7) % len(users)}",
                  "timestamp": (now - timedelta(days=rnd.random() * 60)).isoformat()}
                 for n in range(s, min(s + 10_000, events))]
        ingest(db.session, ws, "event", "insert", chunk, protocol=None)


def best(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=300_000)
    args = parser.parse_args()
    from flask_migrate import upgrade

    from correlated.analytics import listing
    from correlated.analytics.summaries import ensure_fresh
    from correlated.demo import analyze
    from correlated.scores import compile as score_sql, evaluate, service
    from correlated.scores.evaluate import model_of

    for label, url in databases():
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
        with app.app_context():
            upgrade(directory=str(MIGRATIONS))
            ws = create_workspace(db.session, "bench")
            db.session.commit()
            started = time.perf_counter()
            load(ws, args.accounts, args.events)
            analyze(db.session)
            ensure_fresh(db.session, ws.id)
            print(f"{label}: loaded {args.accounts} accounts, {args.accounts * 3} users, "
                  f"{args.events} events in {time.perf_counter() - started:.0f} s")
            model = service.create(db.session, ws.id, MODEL)
            db.session.commit()
            parsed = model_of(db.session, model)
            now = utcnow()

            def bare():
                raw = score_sql._raw(db.session.connection(), ws.id, parsed, now.date(), now)
                db.session.execute(raw).all()
                db.session.rollback()

            def full_select():
                q = score_sql.select(db.session.connection(), ws.id, parsed, now.date(),
                                     now).subquery()
                db.session.execute(sa.select(q.c.entity_id, q.c.score, q.c.tier)).all()
                db.session.rollback()

            def compute():
                assert evaluate.run(db.session, ws.id, model.id, utcnow(), force=True) == \
                    args.accounts

            synced = iter(range(10**9))

            def after_sync():
                # A 1,000-event sync (not timed), then the worker's pass over it (timed): the
                # summaries' refresh and the due model's recompute, each its own transaction.
                rnd = random.Random(next(synced))
                at = utcnow()
                ingest(db.session, ws, "event", "insert", [
                    {"event_id": f"sync{rnd.random()}", "event": "sign_in",
                     "user_id": f"u{rnd.randrange(args.accounts * 3)}",
                     "timestamp": at.isoformat()} for _ in range(1000)], protocol=None)
                db.session.commit()
                started = time.perf_counter()
                ensure_fresh(db.session, ws.id)
                refreshed = time.perf_counter()
                assert evaluate.compute_due(db.session, utcnow()) == 1
                done = time.perf_counter()
                return (refreshed - started) * 1000, (done - refreshed) * 1000

            def listed(sort: str):
                spec = listing.ListSpec(sort=sort, desc=True)
                return lambda: (listing.list_page(db.session, listing.ACCOUNTS, ws.id, spec,
                                                  {"plan": "STRING", "employees": "NUMBER"}),
                                db.session.rollback())

            results = {"bare": best(bare), "select": best(full_select), "compute": best(compute),
                       "list by score": best(listed(f"score:{model.id}")),
                       "list by name": best(listed("name"))}
            syncs = [after_sync() for _ in range(5)]
            for i, name in enumerate(("sync: summaries refresh", "sync: score recompute")):
                got = [s[i] for s in syncs]
                results[name] = (min(got), statistics.median(got))
            got = [a + b for a, b in syncs]
            results["sync: refresh + recompute"] = (min(got), statistics.median(got))
            for name, (low, mid) in results.items():
                print(f"{label}: {name}: best {low:.0f} ms, median {mid:.0f} ms")
            print(f"{label}: compute / bare = {results['compute'][0] / results['bare'][0]:.2f}, "
                  f"select / bare = {results['select'][0] / results['bare'][0]:.2f}, "
                  f"sync recompute / bare = "
                  f"{results['sync: score recompute'][0] / results['bare'][0]:.2f}; "
                  f"load average {os.getloadavg()[0]:.1f}")
            db.session.remove()
            db.engine.dispose()


if __name__ == "__main__":
    main()
