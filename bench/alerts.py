"""Alert delivery latency: from the commit that enqueues a delivery to the receiver getting the
POST, with `correlated alerts deliver` at its default settings, on SQLite and PostgreSQL.

    python bench/alerts.py                     # both engines, 100 deliveries each
    python bench/alerts.py --engines sqlite --count 30

Each delivery is committed on its own, spaced apart (a signal evaluation that moves one account),
while one real deliverer process polls. What bounds the latency: the deliverer's poll interval
(1 s when idle) plus one send. The signal worker's own interval adds to it end to end.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from correlated import MIGRATIONS, create_app  # noqa: E402
from correlated.alerts import enqueue  # noqa: E402
from correlated.alerts.destinations import create_destination  # noqa: E402
from correlated.alerts.rules import create_rule  # noqa: E402
from correlated.alerts.settings import current  # noqa: E402
from correlated.extensions import db  # noqa: E402
from correlated.workspaces import create_workspace  # noqa: E402
from tests.alerts.helpers import SIGNAL, entered  # noqa: E402
from tests.alerts.receivers import HttpReceiver  # noqa: E402
from bench_databases import recreate_postgres  # noqa: E402

POSTGRES = os.environ.get("CORRELATED_BENCH_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/correlated_bench_alerts")


def database(engine: str, folder: Path) -> str:
    if engine == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}"
    return recreate_postgres(POSTGRES)


def run(engine: str, count: int, spacing: float) -> list[float]:
    """Latencies in seconds of `count` deliveries, each committed on its own."""
    from flask_migrate import upgrade

    folder = Path(tempfile.mkdtemp())
    url = database(engine, folder)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
                      "ALLOW_PRIVATE_DESTINATIONS": True})
    receiver = HttpReceiver().start()
    arrivals: dict[str, float] = {}
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))
        ws = create_workspace(db.session, "bench")
        hook = create_destination(db.session, ws.id, "bench", "webhook", receiver.url, current())
        create_rule(db.session, ws.id, {"signal_id": SIGNAL["id"], "destination_id": hook.id,
                                        "cooldown_days": 0})
        db.session.commit()
        env = {**os.environ, "CORRELATED_DATABASE_URL": url, "CORRELATED_SECRET_KEY": "bench",
               "CORRELATED_ALLOW_PRIVATE_DESTINATIONS": "true", "PYTHONPATH": str(ROOT)}
        worker = subprocess.Popen([sys.executable, "-m", "correlated", "alerts", "deliver"],
                                  env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            time.sleep(3)  # the process imports the app
            committed: dict[str, float] = {}
            for i in range(count):
                enqueue(db.session, ws.id, SIGNAL, [entered(f"acct{i}")])
                db.session.commit()
                committed[f"acct{i}"] = time.time()
                time.sleep(spacing)
            deadline = time.time() + 30
            while len(receiver.received) < count and time.time() < deadline:
                time.sleep(0.05)
        finally:
            worker.terminate()
            worker.wait(10)
        for got in receiver.received:
            arrivals[got.json()["data"]["account"]["id"]] = got.at
        db.session.remove()
        db.engine.dispose()
    receiver.stop()
    return [arrivals[k] - committed[k] for k in committed if k in arrivals]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engines", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--spacing", type=float, default=0.37)
    args = parser.parse_args()
    for engine in args.engines:
        latencies = sorted(run(engine, args.count, args.spacing))
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(f"{engine}: {len(latencies)}/{args.count} delivered; commit -> receiver "
              f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
              f"max {latencies[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
