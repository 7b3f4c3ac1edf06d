"""`correlated alerts deliver` as real processes: kill -9 mid-send loses nothing (the same
webhook-id comes again), and two workers side by side never send a delivery twice."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import sqlalchemy as sa

from correlated.alerts.models import Delivery

from ..servers import ROOT
from .helpers import destination, entered, push, rule
from .receivers import Answer


def start_worker(database_url: str, tmp_path, name: str) -> subprocess.Popen:
    env = {**os.environ, "CORRELATED_DATABASE_URL": database_url,
           "CORRELATED_SECRET_KEY": "worker-test", "CORRELATED_ALLOW_PRIVATE_DESTINATIONS": "true",
           "CORRELATED_DELIVERY_LEASE_SECONDS": "2", "CORRELATED_DELIVERY_TIMEOUT_SECONDS": "1.5"}
    with open(tmp_path / f"{name}.log", "a") as log:
        return subprocess.Popen([sys.executable, "-m", "correlated", "alerts", "deliver",
                                 "--interval", "0.1"], env=env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(10)


def wait_until(predicate, timeout: float = 60) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def delivered(db) -> int:
    db.session.rollback()
    return db.session.scalar(sa.select(sa.func.count()).select_from(Delivery).where(
        Delivery.status == "delivered"))


def test_kill_9_mid_send_then_restart_loses_nothing(database_url, db, tenant, allow_private,
                                                   receiver, tmp_path):
    rule(db, tenant, destination(db, tenant, "webhook", receiver.url), cooldown_days=0)
    push(db, tenant, *[entered(f"a{i}") for i in range(5)])
    receiver.script = [Answer(delay=1.2)]  # the first POST hangs (less than the timeout)
    worker = start_worker(database_url, tmp_path, "first")
    try:
        assert wait_until(lambda: len(receiver.received) == 1, 60), \
            (tmp_path / "first.log").read_text()
        kill(worker)  # mid-send: the receiver has the request, the worker never records it
        assert delivered(db) == 0
        worker = start_worker(database_url, tmp_path, "second")
        assert wait_until(lambda: delivered(db) == 5, 60), (tmp_path / "second.log").read_text()
    finally:
        kill(worker)
    ids = Counter(r.headers["webhook-id"] for r in receiver.received)
    expected = set(db.session.scalars(sa.select(Delivery.id)))
    assert set(ids) == expected
    first = receiver.received[0].headers["webhook-id"]
    assert ids[first] == 2  # sent again after the restart, with the same webhook-id
    assert sorted(ids.values()) == [1, 1, 1, 1, 2]


def test_two_workers_never_send_one_delivery_twice(database_url, db, tenant, allow_private,
                                                   receiver, tmp_path):
    receiver.default = Answer(delay=0.02)
    hook = destination(db, tenant, "webhook", receiver.url)
    rule(db, tenant, hook, cooldown_days=0, digest_threshold=1000)
    push(db, tenant, *[entered(f"a{i}") for i in range(60)])
    workers = [start_worker(database_url, tmp_path, f"w{n}") for n in range(2)]
    try:
        assert wait_until(lambda: delivered(db) == 60, 90), \
            (tmp_path / "w0.log").read_text() + (tmp_path / "w1.log").read_text()
    finally:
        for worker in workers:
            kill(worker)
    ids = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert len(ids) == 60 and set(ids.values()) == {1}


def test_deliver_once_sends_what_is_due_and_exits(db, runner, tenant, allow_private, receiver):
    rule(db, tenant, destination(db, tenant, "webhook", receiver.url))
    push(db, tenant, entered("acme"))
    result = runner.invoke(args=["alerts", "deliver", "--once"])
    assert result.exit_code == 0 and "attempted 1 deliveries" in result.output, result.output
    assert len(receiver.received) == 1
    assert "attempted 0 deliveries" in runner.invoke(args=["alerts", "deliver", "--once"]).output
