"""Signals benchmark (in-process through the engine and the evaluator, plus a real worker
process), SQLite and PostgreSQL:

1. account upserts with dimension history off, on, and on in a workspace with signals (where
   the stale marks are written), side by side (interleaved rounds of --upserts accounts
   created, then updated with a fifth changing plan), rows per second of wall-clock and of
   CPU, and each round's ratio to its run without history;
2. a synthetic workspace of --accounts accounts, 10 users each, 10 events per user over 90
   days (the issue's 10k / 100k / 1M at --accounts 10000), and 20 signals mixing every
   condition kind: their full evaluation, and the incremental one after a 1,000-event sync
   (100 users' events),
   each against the bare SQL of the same conditions (the members SELECT alone, no diff, no
   writes);
3. from an ingest commit to the transition being visible, p50/p95, with a `correlated
   worker` process at its default settings.

    PYTHONPATH=. python bench/signals.py --accounts 2000
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta

import sqlalchemy as sa

from correlated import MIGRATIONS, ROOT, create_app, worker
from correlated.extensions import db
from correlated.ingest import history
from correlated.ingest.engine import ingest
from correlated.models import utcnow
from correlated.workspaces import create_workspace
from bench_databases import recreate_postgres

PG = os.environ.get("CORRELATED_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PLANS = ["free", "starter", "pro", "enterprise"]
NAMES = ["sign_in", "report_created", "export", "invoice_paid", "invite_sent"]
SIGNALS = [
    {"conditions": [{"field": "plan", "op": "eq", "value": "free"},
                    {"metric": "active_users", "window_days": 7, "op": "gte", "value": 3}]},
    {"conditions": [{"field": "plan", "op": "in", "value": ["starter", "pro"]},
                    {"metric": "events", "event": "report_created", "window_days": 30,
                     "op": "gte", "value": 3}]},
    {"conditions": [{"metric": "events", "window_days": 60, "offset_days": 30, "op": "gte",
                     "value": 5},
                    {"metric": "events", "window_days": 30, "op": "eq", "value": 0}]},
    {"conditions": [{"metric": "events", "window_days": 30, "compare": "previous", "op": "lte",
                     "value": -50}]},
    {"conditions": [{"metric": "active_days", "window_days": 30, "op": "gte", "value": 10}]},
    {"conditions": [{"metric": "days_since_last_seen", "op": "gte", "value": 14}]},
    {"conditions": [{"metric": "sum", "event": "invoice_paid", "property": "amount",
                     "window_days": 90, "op": "gte", "value": 500}]},
    {"conditions": [{"field": "employees", "op": "between", "value": [50, 500]},
                    {"field": "region", "op": "ne", "value": "EMEA"}]},
    {"conditions": [{"field": "plan", "changed_to": "enterprise", "within_days": 7}]},
    {"conditions": [{"field": "plan", "changed": True, "within_days": 30}]},
    {"match": "any", "conditions": [{"field": "region", "op": "is_not_set"},
                                    {"metric": "events", "event": "export", "window_days": 14,
                                     "op": "gte", "value": 2}]},
    {"conditions": [{"field": "name", "op": "contains", "value": "7"},
                    {"metric": "active_users", "window_days": 30, "op": "gte", "value": 5}]},
    {"conditions": [{"metric": "events", "event": "invite_sent", "window_days": 7, "op": "gte",
                     "value": 1}]},
    {"conditions": [{"metric": "active_users", "window_days": 90, "op": "lt", "value": 3}]},
    {"conditions": [{"field": "plan", "op": "eq", "value": "enterprise"},
                    {"metric": "days_since_last_seen", "op": "lte", "value": 3}]},
    {"object": "user", "conditions": [{"metric": "events", "window_days": 7, "op": "gte",
                                       "value": 2}]},
    {"object": "user", "conditions": [{"field": "role", "op": "eq", "value": "admin"},
                                      {"metric": "days_since_last_seen", "op": "gte", "value": 30}]},
    {"object": "user", "conditions": [{"metric": "active_days", "window_days": 30, "op": "gte",
                                       "value": 3}]},
    {"object": "user", "conditions": [{"field": "account_id", "changed": True,
                                       "within_days": 30}]},
]
PROBE = {"conditions": [{"metric": "events", "event": "probe", "window_days": 1, "op": "gte",
                         "value": 1}]}


def databases():
    folder = tempfile.mkdtemp()
    yield "SQLite", f"sqlite:///{folder}/bench.db"
    yield "PostgreSQL", recreate_postgres(sa.engine.make_url(PG).set(database="bench_signals"))


# --- 1. ingest with dimension history on and off --------------------------------------------

def upsert_rate(ws, n: int, enabled: bool, tag: str) -> tuple[float, float]:
    """Rows per second of wall-clock and of this process's CPU time (SQLite works inside the
    process, so on it CPU time is the work itself, less disturbed by the machine's other load;
    on PostgreSQL it leaves out the server's share)."""
    history.ENABLED = enabled
    rows = [{"account_id": f"{tag}{i}", "name": f"A {i}", "plan": "free", "seats": i % 50}
            for i in range(n)]
    changed = [{**r, "plan": "pro" if i % 5 == 0 else "free", "seats": i % 50}
               for i, r in enumerate(rows)]
    analyze()
    gc.collect()  # no collection of an earlier run's garbage inside this one
    started, cpu = time.perf_counter(), time.process_time()
    for batch in (rows, changed):
        for s in range(0, n, 1000):
            ingest(db.session, ws, "account", "upsert", batch[s:s + 1000])
    history.ENABLED = True
    return 2 * n / (time.perf_counter() - started), 2 * n / (time.process_time() - cpu)


def analyze() -> None:
    """Fresh planner statistics before each timed run, as autovacuum keeps them in a running
    deployment. Without them, PostgreSQL plans the 500-ID IN lists of a table that grew by
    10,000 rows seconds ago as if it were empty (a scan of the workspace's rows per list),
    and whichever run comes later looks slower."""
    db.session.execute(sa.text("ANALYZE"))
    db.session.commit()


MODES = {"off": "history off", "on": "history on, no signal in the workspace",
         "signals": "history on, account and user signals in the workspace (stale marks kept)"}


def history_cost(label: str, n: int, rounds: int) -> None:
    from correlated.signals import service

    plain = create_workspace(db.session, "upserts")
    watched = create_workspace(db.session, "upserts with signals")
    db.session.commit()
    for obj in ("account", "user"):  # marks are written where a signal of the object reads them
        service.create(db.session, watched.id, {"name": f"{obj}s", "object": obj, "conditions": [
            {"field": "plan" if obj == "account" else "email", "op": "is_set"}]})
    db.session.commit()
    rates: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    for r in range(rounds):  # interleaved, the order rotating: drift and warm-up even out
        modes = list(MODES)[r % 3:] + list(MODES)[:r % 3]
        for mode in modes:
            ws = watched if mode == "signals" else plain
            rates[mode].append(upsert_rate(ws, n, mode != "off", f"{mode}{r}-"))
    print(f"{label}: account upserts, {rounds} interleaved rounds of {n:,} created then updated "
          f"(load average {os.getloadavg()[0]:.1f})")
    for k, clock in enumerate(("wall", "CPU")):
        for mode, text in MODES.items():
            values = sorted(x[k] for x in rates[mode])
            line = f"  {clock:4} {text}: median {statistics.median(values):,.0f}/s " \
                   f"(quartiles {quartiles(values)})"
            if mode != "off":  # each round's ratio to the run without history beside it
                ratios = sorted((x[k] / o[k] - 1) * 100 for x, o in zip(rates[mode], rates["off"]))
                line += (f": {statistics.median(ratios):+.1f}% "
                         f"(quartiles {quartiles(ratios, '{:+.1f}%')})")
            print(line)


def quartiles(values: list[float], form: str = "{:,.0f}") -> str:
    """The first and third quartiles of sorted `values`."""
    return f"{form.format(values[len(values) // 4])} to {form.format(values[(3 * len(values)) // 4])}"


# --- 2. evaluation --------------------------------------------------------------------------

def load(ws, accounts: int, seed: int = 5) -> int:
    rnd = random.Random(seed)
    now = utcnow()
    ingest(db.session, ws, "account", "upsert", [
        {"account_id": f"a{i}", "name": f"Account {i}", "plan": rnd.choice(PLANS),
         "employees": int(rnd.lognormvariate(4, 1.2)),
         **({"region": rnd.choice(["EMEA", "AMER", "APAC"])} if rnd.random() > .1 else {})}
        for i in range(accounts)])
    for start in range(0, accounts * 10, 5000):
        ingest(db.session, ws, "user", "upsert", [
            {"user_id": f"u{i}", "email": f"u{i}@x.example", "account_id": f"a{i // 10}",
             "role": "admin" if i % 10 == 0 else "member"}
            for i in range(start, min(start + 5000, accounts * 10))])
    events = 0
    batch = []
    for u in range(accounts * 10):
        for k in range(10):
            name = rnd.choice(NAMES)
            row = {"event_id": f"e{u}-{k}", "event": name, "user_id": f"u{u}",
                   "timestamp": (now - timedelta(days=rnd.triangular(0, 90, 10))).isoformat()}
            if name == "invoice_paid":
                row["amount"] = rnd.randrange(10, 400)
            batch.append(row)
        if len(batch) >= 5000:
            ingest(db.session, ws, "event", "insert", batch)
            events += len(batch)
            batch = []
    if batch:
        ingest(db.session, ws, "event", "insert", batch)
        events += len(batch)
    return events


def bare_sql(ws: int, ids: list[str], now) -> float:
    """Milliseconds of the members SELECTs alone (every entity's matched flag and values)."""
    from correlated.signals import evaluate
    from correlated.signals.compile import select
    from correlated.signals.models import Signal

    started = time.perf_counter()
    for sid in ids:
        signal = db.session.get(Signal, (ws, sid))
        query = select(db.session.connection(), ws, evaluate.definition_of(db.session, signal),
                       now.date(), now, evaluate.names_of(db.session, ws))
        db.session.execute(query).all()
    db.session.rollback()
    return (time.perf_counter() - started) * 1000


def evaluation(label: str, accounts: int) -> tuple[int, list[str]]:
    from correlated.analytics.summaries import ensure_fresh
    from correlated.signals import evaluate, service

    ws = create_workspace(db.session, "signals")
    db.session.commit()
    started = time.perf_counter()
    events = load(ws, accounts)
    analyze()
    ensure_fresh(db.session, ws.id)
    print(f"{label}: {accounts:,} accounts, {accounts * 10:,} users, {events:,} events loaded in "
          f"{time.perf_counter() - started:.0f} s")
    ids = [service.create(db.session, ws.id, {"name": f"s{i}", **d}).id
           for i, d in enumerate(SIGNALS)]
    ids.append(service.create(db.session, ws.id, {
        "name": "s-of-s", "conditions": [{"signal": ids[0], "op": "in"},
                                         {"signal": ids[4], "op": "not_in"}]}).id)
    ids.append(service.create(db.session, ws.id, {"name": "probe", **PROBE}).id)
    db.session.commit()
    ids, probe = ids[:-1], ids[-1]
    now = utcnow()
    bare = bare_sql(ws.id, ids, now)
    started = time.perf_counter()
    for sid in evaluate.order(db.session, ws.id):
        evaluate.run(db.session, ws.id, sid, now, force=True)
    full = (time.perf_counter() - started) * 1000
    print(f"{label}: full evaluation of {len(ids)} signals (+1 probe) {full:,.0f} ms; bare SQL "
          f"of the same conditions {bare:,.0f} ms (x{full / bare:.2f})")
    rnd = random.Random(9)
    active = rnd.sample(range(accounts * 10), 100)  # a sync of the last hour: 100 users' events
    ingest(db.session, ws, "event", "insert", [
        {"event_id": f"sync-{k}", "event": rnd.choice(NAMES),
         "user_id": f"u{active[k % 100]}", "timestamp": utcnow().isoformat()}
        for k in range(1000)])
    now = utcnow()
    started = time.perf_counter()
    ensure_fresh(db.session, ws.id, now.date())
    refreshed = time.perf_counter()
    done = worker.evaluate_workspace(db.session, ws.id, now)
    incremental = (time.perf_counter() - refreshed) * 1000
    print(f"{label}: after a 1,000-event sync: summaries refresh "
          f"{(refreshed - started) * 1000:,.0f} ms, incremental evaluation of {done} signals "
          f"{incremental:,.0f} ms (x{incremental / bare:.2f} the full bare SQL, "
          f"x{incremental / full:.2f} the full evaluation)")
    return ws.id, [probe]


# --- 3. ingest commit -> transition, with a real worker -------------------------------------

def latency(label: str, url: str, ws_id: int, probe: str, samples: int) -> None:
    from correlated.models import Workspace
    from correlated.signals.models import Transition

    env = {**os.environ, "CORRELATED_DATABASE_URL": url, "CORRELATED_SECRET_KEY": "bench",
           "PYTHONPATH": str(ROOT)}
    env.pop("CORRELATED_WORKER_INTERVAL", None)  # the default
    log = open(tempfile.mktemp(suffix=".log"), "w")
    process = subprocess.Popen([sys.executable, "-m", "correlated", "worker"], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    ws = db.session.get(Workspace, ws_id)
    took = []
    try:
        for k in range(samples):
            account = f"a{k}"
            ingest(db.session, ws, "event", "insert", [{
                "event_id": f"probe-{k}", "event": "probe", "user_id": f"u{k * 10}",
                "account_id": account, "timestamp": utcnow().isoformat()}])
            committed = time.perf_counter()
            seen = sa.select(Transition.id).where(Transition.signal_id == probe,
                                                  Transition.entity_id == account)
            while not db.session.execute(seen).first():
                db.session.rollback()
                time.sleep(0.05)
                if time.perf_counter() - committed > 120:
                    raise RuntimeError("no transition after 120 s")
            took.append(time.perf_counter() - committed)
            db.session.rollback()
            time.sleep(random.random())  # syncs arrive at any point of the poll
    finally:
        process.terminate()
        process.wait(30)
    took.sort()
    p95 = took[min(len(took) - 1, int(round(0.95 * (len(took) - 1))))]
    print(f"{label}: ingest commit -> transition visible, {samples} samples, worker defaults: "
          f"p50 {statistics.median(took):.2f} s, p95 {p95:.2f} s, max {took[-1]:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--upserts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--only", choices=["upserts", "signals"], default=None)
    parser.add_argument("--database", choices=["SQLite", "PostgreSQL"], default=None)
    args = parser.parse_args()
    from flask_migrate import upgrade

    for label, url in databases():
        if args.database and label != args.database:
            continue
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
        with app.app_context():
            upgrade(directory=str(MIGRATIONS))
            if args.only != "signals":
                history_cost(label, args.upserts, args.rounds)
            if args.only != "upserts":
                ws_id, (probe,) = evaluation(label, args.accounts)
                latency(label, url, ws_id, probe, args.samples)
            db.session.remove()
            db.engine.dispose()


if __name__ == "__main__":
    main()
