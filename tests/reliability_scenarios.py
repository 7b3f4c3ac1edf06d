"""Crash and concurrency scenarios against a real gunicorn; used by the tests and by bench/.

Each scenario returns its figures (sent, acknowledged, kills, lost, duplicates, 5xx) so the
tests can assert them and `bench/reliability.py` can report a longer run.
"""
from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import requests
import sqlalchemy as sa

from .servers import Gunicorn

BATCH = 40


@dataclass
class Figures:
    events_sent: int = 0
    requests: int = 0
    retries: int = 0
    worker_kills: int = 0
    server_kills: int = 0
    status_5xx: int = 0
    other_errors: list[str] = field(default_factory=list)
    events_stored: int = 0
    events_lost: int = 0
    events_duplicated: int = 0
    rollup_total: int = 0
    profiles_wrong: int = 0
    seconds: float = 0.0
    server_log: str = ""
    lock = threading.Lock()

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


def _event_batches(sender: int, batches: int) -> list[list[dict]]:
    return [[{"event_id": f"s{sender}-b{b}-{i}", "event": "crash_test", "user_id": f"u{sender}-{i % 7}",
              "account_id": f"acc{sender}", "timestamp": 1_714_557_600 + b * 60 + i}
             for i in range(BATCH)] for b in range(batches)]


def _profile_batch(sender: int, version: int, shared_ids: bool) -> tuple[str, list[dict]]:
    """Accounts or users, alternately, each carrying `version` as a dimension."""
    owner = "shared" if shared_ids else f"s{sender}"
    if version % 2:
        return "accounts", [{"account_id": f"{owner}-acc{k}", "name": f"Account {k}",
                             "version": version, "sender": sender} for k in range(5)]
    return "users", [{"user_id": f"{owner}-user{k}", "email": f"user{k}@{owner}.example",
                      "account_id": f"{owner}-acc{k}", "version": version, "sender": sender}
                     for k in range(5)]


class Sender(threading.Thread):
    """Sends its batches; a batch without a 2xx goes back in the queue and is sent again."""

    def __init__(self, base: str, key: str, number: int, work: list[tuple[str, list[dict]]],
                 figures: Figures, acked: dict):
        super().__init__(daemon=True)
        self.base, self.number, self.figures, self.acked = base, number, figures, acked
        self.queue = deque(work)
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"

    def run(self) -> None:
        while self.queue:
            collection, rows = self.queue.popleft()
            if self.post(collection, rows):
                with self.figures.lock:
                    for row in rows:  # ack order is what "last acknowledged value" means
                        self.acked.setdefault(_row_key(collection, row), []).append(row)
            else:
                self.figures.count("retries")
                self.queue.appendleft((collection, rows))
                time.sleep(0.05)

    def post(self, collection: str, rows: list[dict]) -> bool:
        self.figures.count("requests")
        try:
            response = self.http.post(f"{self.base}/api/v1/{collection}", json=rows, timeout=20)
        except requests.RequestException:
            return False
        if response.status_code >= 500:
            self.figures.count("status_5xx")
        elif response.status_code != 200 or response.json()["rejected"]:
            self.figures.other_errors.append(f"{response.status_code} {response.text[:200]}")
        return response.status_code == 200


def _row_key(collection: str, row: dict) -> tuple[str, str]:
    return collection, row[{"events": "event_id", "accounts": "account_id",
                            "users": "user_id"}[collection]]


def _work(sender: int, batches: int, shared_ids: bool) -> list[tuple[str, list[dict]]]:
    work: list[tuple[str, list[dict]]] = []
    for b, events in enumerate(_event_batches(sender, batches)):
        work.append(("events", events))
        work.append(_profile_batch(sender, b, shared_ids))
    return work


def _check(database_url: str, figures: Figures, acked: dict, expected_events: int,
           exact: bool) -> None:
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        figures.events_stored = conn.scalar(sa.text("SELECT count(*) FROM events"))
        distinct = conn.scalar(sa.text("SELECT count(DISTINCT event_id) FROM events"))
        figures.rollup_total = conn.scalar(sa.text("SELECT coalesce(sum(count), 0) FROM daily_activity"))
        stored_ids = {r[0] for r in conn.execute(sa.text("SELECT event_id FROM events"))}
        acked_events = {k[1] for k in acked if k[0] == "events"}
        figures.events_lost = len(acked_events - stored_ids) + (expected_events - len(acked_events))
        figures.events_duplicated = (figures.events_stored - distinct) + \
            max(0, figures.rollup_total - figures.events_stored)
        figures.profiles_wrong = _wrong_profiles(conn, acked, exact)
    engine.dispose()


def _wrong_profiles(conn, acked: dict, exact: bool) -> int:
    """Profiles not holding the last acknowledged write (exact) or any acknowledged write whole."""
    stored = {"accounts": dict(conn.execute(sa.text("SELECT account_id, traits FROM accounts")).all()),
              "users": dict(conn.execute(sa.text("SELECT user_id, traits FROM users")).all())}
    wrong = 0
    for (collection, key), rows in acked.items():
        if collection == "events":
            continue
        traits = stored[collection].get(key)
        traits = json.loads(traits) if isinstance(traits, str) else traits or {}
        got = (traits.get("version"), traits.get("sender"))
        candidates = rows[-1:] if exact else rows
        wrong += got not in {(r["version"], r["sender"]) for r in candidates}
    return wrong


def crash_scenario(database_url: str, key: str, folder: Path, senders: int = 4,
                   batches: int = 15, seed: int = 1) -> Figures:
    """Senders stream batches while workers are kill -9'd at random, and once the whole server."""
    server = Gunicorn(database_url, folder, workers=2)
    server.start()
    figures, acked = Figures(), {}
    threads = [Sender(server.base, key, s, _work(s, batches, shared_ids=False), figures, acked)
               for s in range(senders)]
    figures.events_sent = senders * batches * BATCH
    started = time.time()
    for t in threads:
        t.start()
    rng = random.Random(seed)
    try:
        while any(t.is_alive() for t in threads):
            # Kill at a random moment once the server made some progress since the last kill,
            # so a run cannot starve on workers that are killed faster than they boot.
            seen = figures.requests - figures.retries
            while any(t.is_alive() for t in threads) and \
                    figures.requests - figures.retries < seen + max(2, senders // 2):
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.4))
            if figures.worker_kills >= 2 and figures.server_kills == 0:
                server.kill_all()
                figures.count("server_kills")
                time.sleep(0.5)
                server.start()
                continue
            pids = server.worker_pids()
            if pids and any(t.is_alive() for t in threads):
                server.kill_worker(rng.choice(pids))
                figures.count("worker_kills")
        for t in threads:
            t.join(120)
    finally:
        server.stop()
    figures.seconds = round(time.time() - started, 1)
    _check(database_url, figures, acked, figures.events_sent, exact=True)
    return figures


def concurrency_scenario(database_url: str, key: str, folder: Path, senders: int = 8,
                         batches: int = 8) -> Figures:
    """Senders upsert overlapping IDs and send the same event batches as each other."""
    server = Gunicorn(database_url, folder, workers=4)
    server.start()
    figures, acked = Figures(), {}
    # Senders pair up on event batches (0 and 1 send the same ones, ...): every batch twice.
    threads = []
    for s in range(senders):
        work = []
        for b, events in enumerate(_event_batches(s // 2, batches)):
            work.append(("events", events))
            work.append(_profile_batch(s, b, shared_ids=True))
        threads.append(Sender(server.base, key, s, work, figures, acked))
    figures.events_sent = (senders + 1) // 2 * batches * BATCH
    started = time.time()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
    finally:
        server.stop()
    figures.seconds = round(time.time() - started, 1)
    _check(database_url, figures, acked, figures.events_sent, exact=False)
    figures.server_log = server.log.read_text()
    return figures
