"""Alerts end to end, with a real `correlated worker` process at its default settings (poll every
2 s when idle; delivery timeout 10 s, lease 60 s), on SQLite and PostgreSQL:

1. latency: from the commit of a REST `POST /api/v1/events` (through a live gunicorn) that
   pushes an account into a signal, to the webhook receiver getting the POST; p50/p95;
2. digest: 1,000 accounts entering a signal in one evaluation -> how many POSTs arrive;
3. outage: the receiver is down (connection refused) for --outage seconds while deliveries
   queue up (half before, half in the middle of the outage), then up again: each webhook-id
   is counted at the receiver, and the order per account is checked.

    PYTHONPATH=. python bench/alerts_end_to_end.py --part latency --engines sqlite postgresql
    PYTHONPATH=. python bench/alerts_end_to_end.py --part outage --engines sqlite --outage 600

What bounds (1): the worker's loop runs refresh+evaluate, then the outbox send, then sleeps 2 s
when the pass did nothing. A commit waits on average half a poll interval for the next pass
(at most 2 s), then the summaries refresh and the signal's evaluation (which writes the
transition and its delivery in one transaction), then, in the same pass, the send.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from correlated import MIGRATIONS, create_app  # noqa: E402
from correlated.alerts import enqueue  # noqa: E402
from correlated.alerts.destinations import create_destination  # noqa: E402
from correlated.alerts.models import Delivery, DeliveryAttempt  # noqa: E402
from correlated.alerts.rules import create_rule  # noqa: E402
from correlated.alerts.settings import current  # noqa: E402
from correlated.extensions import db  # noqa: E402
from correlated.workspaces import create_workspace  # noqa: E402
from tests.alerts.helpers import SIGNAL, entered  # noqa: E402
from tests.alerts.receivers import HttpReceiver  # noqa: E402
from tests.servers import Gunicorn, free_port  # noqa: E402
from bench_databases import recreate_postgres  # noqa: E402

POSTGRES = os.environ.get("CORRELATED_BENCH_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def database(engine: str, part: str, folder: Path) -> str:
    """A fresh database of its own for each part and engine (they may run side by side)."""
    if engine == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}"
    return recreate_postgres(sa.engine.make_url(POSTGRES).set(
        database=f"correlated_bench_e2e_{part}"))


def app_for(url: str):
    from flask_migrate import upgrade

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
                      "ALLOW_PRIVATE_DESTINATIONS": True})
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))
    return app


def start_worker(url: str, folder: Path) -> subprocess.Popen:
    """`correlated worker` at its defaults (no interval, timeout or lease set)."""
    env = {**os.environ, "CORRELATED_DATABASE_URL": url, "CORRELATED_SECRET_KEY": "bench",
           "CORRELATED_ALLOW_PRIVATE_DESTINATIONS": "true", "PYTHONPATH": str(ROOT)}
    for key in ("CORRELATED_WORKER_INTERVAL", "CORRELATED_DELIVERY_TIMEOUT_SECONDS",
                "CORRELATED_DELIVERY_LEASE_SECONDS"):
        env.pop(key, None)
    log = open(folder / "worker.log", "a")
    return subprocess.Popen([sys.executable, "-m", "correlated", "worker"], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])

# --- 1 and 2: a live server, a real worker --------------------------------------------------

PROBE = {"name": "probe", "conditions": [{"metric": "events", "event": "probe", "window_days": 1,
                                          "op": "gte", "value": 1}]}


class Live:
    """A workspace of `accounts` accounts (one user each), a signal any `probe` event of the
    day puts an account into, a webhook rule to a receiver, gunicorn and `correlated worker`."""

    def __init__(self, engine: str, part: str, accounts: int, threshold: int = 10):
        from correlated.auth import issue_key
        from correlated.ingest.engine import ingest
        from correlated.models import utcnow
        from correlated.signals import evaluate, service

        self.folder = Path(tempfile.mkdtemp())
        self.url = database(engine, part, self.folder)
        self.app = app_for(self.url)
        self.receiver = HttpReceiver().start()
        with self.app.app_context():
            ws = create_workspace(db.session, "bench")
            _, self.key = issue_key(db.session, ws)
            db.session.commit()
            ingest(db.session, ws, "account", "upsert", [
                {"account_id": f"a{i}", "name": f"Account {i}", "plan": "free"}
                for i in range(accounts)])
            ingest(db.session, ws, "user", "upsert", [
                {"user_id": f"u{i}", "email": f"u{i}@x.example", "account_id": f"a{i}"}
                for i in range(accounts)])
            signal = service.create(db.session, ws.id, PROBE)
            db.session.commit()
            self.signal_id = signal.id
            evaluate.run(db.session, ws.id, signal.id, utcnow(), force=True)  # the back-fill
            hook = create_destination(db.session, ws.id, "hook", "webhook", self.receiver.url,
                                      current())
            create_rule(db.session, ws.id, {"signal_id": signal.id, "destination_id": hook.id,
                                            "cooldown_days": 0, "digest_threshold": threshold})
            db.session.commit()
            db.session.remove()
            db.engine.dispose()
        self.server = Gunicorn(self.url, self.folder, workers=1)
        self.server.start()
        self.worker = start_worker(self.url, self.folder)
        time.sleep(8)  # the worker imports the app and finds nothing to do

    def post_events(self, rows: list[dict]) -> tuple[float, float]:
        """POST the events; (sent, answered) wall-clock times. The commit is between the two."""
        sent = time.time()
        answer = requests.post(self.server.base + "/api/v1/events", json=rows, timeout=120,
                               headers={"Authorization": f"Bearer {self.key}"})
        answered = time.time()
        if answer.status_code != 200:
            raise RuntimeError(f"ingest: {answer.status_code} {answer.text[:500]}")
        return sent, answered

    def close(self) -> None:
        stop(self.worker)
        self.server.stop()
        self.receiver.stop()


def probe(account: int, k: int) -> dict:
    from correlated.models import utcnow

    return {"event_id": f"probe-{account}-{k}", "event": "probe", "user_id": f"u{account}",
            "account_id": f"a{account}", "timestamp": utcnow().isoformat()}


def latency(engine: str, samples: int) -> dict:
    """One account pushed into the signal at a time; each waits for its POST at the receiver."""
    live = Live(engine, "latency", samples)
    took, answered_in = [], []
    rnd = random.Random(7)
    try:
        for k in range(samples):
            time.sleep(rnd.uniform(0, 2.5))  # commits land at any point of the 2 s poll
            sent, answered = live.post_events([probe(k, 0)])
            answered_in.append(answered - sent)
            wanted = f'"a{k}"'.encode()
            deadline = answered + 120
            while not any(wanted in r.body for r in live.receiver.received):
                if time.time() > deadline:
                    raise RuntimeError(f"a{k}: no POST after 120 s; see {live.folder}/worker.log")
                time.sleep(0.02)
            arrival = next(r.at for r in live.receiver.received if wanted in r.body)
            took.append(arrival - answered)
    finally:
        live.close()
    posts = len(live.receiver.received)
    result = {"engine": engine, "samples": samples, "posts": posts,
              "p50_s": round(statistics.median(took), 2), "p95_s": round(percentile(took, .95), 2),
              "min_s": round(min(took), 2), "max_s": round(max(took), 2),
              "ingest_request_p50_ms": round(statistics.median(answered_in) * 1000),
              "load": load()}
    print(json.dumps(result), flush=True)
    return result


def digest(engine: str, accounts: int) -> dict:
    """`accounts` accounts pushed into the signal by one REST POST: one evaluation, one digest."""
    live = Live(engine, "digest", accounts)
    try:
        sent, answered = live.post_events([probe(i, 0) for i in range(accounts)])
        deadline = answered + 120
        while not live.receiver.received and time.time() < deadline:
            time.sleep(0.05)
        first = live.receiver.received[0].at if live.receiver.received else None
        time.sleep(20)  # ten more polls: anything else that was going to come
    finally:
        live.close()
    received = list(live.receiver.received)
    bodies = [r.json() for r in received]
    with live.app.app_context():
        transitions = db.session.scalar(sa.text(
            "SELECT count(*) FROM signal_transitions WHERE signal_id = :s AND kind = 'entered'"),
            {"s": live.signal_id})
        deliveries = db.session.scalar(sa.select(sa.func.count()).select_from(Delivery))
        db.session.remove()
        db.engine.dispose()
    result = {"engine": engine, "accounts": accounts, "transitions": transitions,
              "deliveries": deliveries, "posts": len(received),
              "types": [b["type"] for b in bodies],
              "digest_count": [b["data"].get("digest", {}).get("count") for b in bodies],
              "listed": [len(b["data"].get("digest", {}).get("accounts", [])) for b in bodies],
              "ingest_request_s": round(answered - sent, 2),
              "commit_to_digest_s": round(first - answered, 2) if first else None,
              "load": load()}
    print(json.dumps(result), flush=True)
    return result


# --- 3. outage ------------------------------------------------------------------------------

def outage(engine: str, seconds: float, accounts: int, wait_after: float) -> dict:
    """Deliveries queued while the receiver is down, counted per webhook-id once it is back."""
    folder = Path(tempfile.mkdtemp())
    url = database(engine, "outage", folder)
    app = app_for(url)
    port = free_port()
    target = f"http://127.0.0.1:{port}/hook"  # nothing listens yet: connection refused
    with app.app_context():
        ws = create_workspace(db.session, "bench")
        hook = create_destination(db.session, ws.id, "down", "webhook", target, current())
        create_rule(db.session, ws.id, {"signal_id": SIGNAL["id"], "destination_id": hook.id,
                                        "on": "both", "cooldown_days": 0,
                                        "digest_threshold": 10_000})
        db.session.commit()
        worker = start_worker(url, folder)
        try:
            down_at = time.time()
            # half the deliveries at the start of the outage, the other half in its middle:
            # each account enters, then leaves (two deliveries per account, in order)
            enqueue(db.session, ws.id, SIGNAL, [entered(f"acct{i}") for i in range(accounts)])
            db.session.commit()
            time.sleep(seconds / 2)
            enqueue(db.session, ws.id, SIGNAL,
                    [entered(f"acct{i}", kind="exited") for i in range(accounts)])
            db.session.commit()
            time.sleep(max(0.0, down_at + seconds - time.time()))
            receiver = HttpReceiver(port=port).start()
            up_at = time.time()
            total = 2 * accounts
            deadline = up_at + wait_after
            while len(receiver.received) < total and time.time() < deadline:
                time.sleep(0.5)
            time.sleep(10)  # anything sent twice would come now
        finally:
            stop(worker)
        received = list(receiver.received)
        receiver.stop()
        db.session.rollback()
        ids = set(db.session.scalars(sa.select(Delivery.id).where(Delivery.type != "test")))
        statuses = Counter(db.session.scalars(sa.select(Delivery.status)))
        attempts = Counter(db.session.scalars(sa.select(Delivery.attempts)))
        failed_attempts = db.session.scalar(sa.select(sa.func.count()).select_from(
            DeliveryAttempt).where(DeliveryAttempt.status != "delivered"))
        db.session.remove()
        db.engine.dispose()
    per_id = Counter(r.headers["webhook-id"] for r in received)
    order: dict[str, list[str]] = defaultdict(list)
    for r in received:
        body = r.json()
        order[body["data"]["account"]["id"]].append(body["type"])
    in_order = all(kinds == ["signal.entered", "signal.exited"] for kinds in order.values())
    arrivals = sorted(r.at for r in received)
    result = {
        "engine": engine, "outage_s": round(up_at - down_at), "deliveries": len(ids),
        "posts": len(received), "distinct_ids": len(per_id),
        "ids_once": sum(1 for n in per_id.values() if n == 1),
        "ids_more": sum(1 for n in per_id.values() if n > 1),
        "missing": len(ids - set(per_id)), "statuses": dict(statuses),
        "attempts_per_delivery": dict(sorted(attempts.items())),
        "failed_attempts": failed_attempts, "in_order_per_account": in_order,
        "first_after_up_s": round(arrivals[0] - up_at, 1) if arrivals else None,
        "last_after_up_s": round(arrivals[-1] - up_at, 1) if arrivals else None,
        "load": load()}
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["latency", "digest", "outage"], required=True)
    parser.add_argument("--engines", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--outage", type=float, default=600)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--wait-after", type=float, default=1500)
    args = parser.parse_args()
    for engine in args.engines:
        if args.part == "latency":
            latency(engine, args.samples)
        elif args.part == "digest":
            digest(engine, 1000 if args.accounts == 20 else args.accounts)
        elif args.part == "outage":
            outage(engine, args.outage, args.accounts, args.wait_after)


if __name__ == "__main__":
    main()
