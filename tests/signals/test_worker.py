"""The worker as real processes: it keeps signals current without anyone asking, survives a
kill -9 in the middle of an evaluation without a half-applied state, and two workers on
PostgreSQL never evaluate the same thing twice."""
from __future__ import annotations

import os
import signal as signals_module
import subprocess
import sys
import time
from collections import defaultdict

import pytest
import sqlalchemy as sa

from correlated import ROOT
from correlated.ingest.engine import ingest
from correlated.models import utcnow
from correlated.signals import evaluate, service
from correlated.signals.models import SignalMember, Transition

from . import reference
from .test_evaluate import load

EXPANSION = {"conditions": [{"field": "plan", "op": "eq", "value": "free"},
                            {"metric": "active_users", "window_days": 7, "op": "gte",
                             "value": 3}]}


def start_worker(database_url: str, tmp_path, name: str = "worker") -> subprocess.Popen:
    env = {**os.environ, "CORRELATED_DATABASE_URL": database_url,
           "CORRELATED_SECRET_KEY": "worker-test", "CORRELATED_WORKER_INTERVAL": "0.2",
           "PYTHONPATH": str(ROOT)}
    with open(tmp_path / f"{name}.log", "w") as log:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "correlated", "worker"], env=env,
                                cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signals_module.SIGTERM)
        process.wait(20)


def wait_until(predicate, timeout: float = 30) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError("timed out")


def transitions(db, signal_id: str) -> list[tuple]:
    db.session.rollback()  # a fresh snapshot (SQLite)
    return db.session.execute(sa.select(Transition.entity_id, Transition.kind, Transition.backfill)
                              .where(Transition.signal_id == signal_id)
                              .order_by(Transition.id)).all()


def consistent(db, signal_id: str) -> set[str]:
    """Members equal the entities whose last transition is an entry; entries and exits
    alternate per entity. Returns the members."""
    last: dict[str, str] = {}
    for entity, kind, _ in transitions(db, signal_id):
        assert last.get(entity, "exited") != kind, (entity, kind)
        last[entity] = kind
    members = set(db.session.scalars(sa.select(SignalMember.entity_id)
                                     .where(SignalMember.signal_id == signal_id)))
    assert members == {e for e, k in last.items() if k == "entered"}
    return members


def push_over(db, workspace, account: str = "a1", users: int = 3) -> None:
    """Activity today from `users` users of a free account (and the account made free)."""
    ingest(db.session, workspace, "account", "update", [{"account_id": account, "plan": "free"}])
    now = utcnow().isoformat()
    ingest(db.session, workspace, "event", "insert", [
        {"event_id": f"push-{account}-{i}-{now}", "event": "sign_in", "user_id": f"{account}-u{i}",
         "account_id": account, "timestamp": now} for i in range(users)])


def test_the_worker_keeps_a_signal_current(db, workspace, database_url, tmp_path):
    load(db.session, workspace)
    signal = service.create(db.session, workspace.id, {"name": "expansion", **EXPANSION})
    db.session.commit()
    worker = start_worker(database_url, tmp_path)
    try:
        wait_until(lambda: transitions(db, signal.id))  # the back-fill
        assert all(backfill for _, _, backfill in transitions(db, signal.id))
        push_over(db, workspace, "a1")
        took = wait_until(lambda: ("a1", "entered", False) in transitions(db, signal.id))
        assert took < 30
        want = reference.members(db.session, workspace.id, EXPANSION, utcnow())
        assert consistent(db, signal.id) == want
    finally:
        stop(worker)
    assert worker.returncode == 0  # SIGTERM: a clean stop


def test_kill_9_mid_evaluation_leaves_nothing_half_applied(db, workspace, database_url,
                                                           tmp_path):
    load(db.session, workspace)
    ids = []
    for i in range(8):
        definition = {"conditions": [{"metric": "events", "window_days": 30 + i, "op": "gte",
                                      "value": 5 + i}]}
        ids.append(service.create(db.session, workspace.id, {"name": f"s{i}", **definition}).id)
    db.session.commit()
    for attempt in range(3):
        worker = start_worker(database_url, tmp_path, f"w{attempt}")
        time.sleep(0.6 + 0.35 * attempt)  # somewhere in the start-up and the evaluations
        worker.send_signal(signals_module.SIGKILL)
        worker.wait(10)
        for sid in ids:
            consistent(db, sid)
        push_over(db, workspace, f"a{attempt}", users=2)
    worker = start_worker(database_url, tmp_path, "final")
    try:
        wait_until(lambda: not _due(db, workspace.id), timeout=60)
    finally:
        stop(worker)
    now = utcnow()
    for i, sid in enumerate(ids):
        definition = {"conditions": [{"metric": "events", "window_days": 30 + i, "op": "gte",
                                      "value": 5 + i}]}
        assert consistent(db, sid) == reference.members(db.session, workspace.id, definition, now)
        backfills = [t for t in transitions(db, sid) if t[2]]
        assert len(backfills) == len({t[0] for t in backfills})  # back-filled exactly once


def _due(db, workspace_id: int) -> list[str]:
    db.session.rollback()
    from correlated.signals.models import Signal

    inputs = evaluate.inputs_at(db.session, workspace_id)
    today = utcnow().date()
    signals = db.session.scalars(sa.select(Signal).where(Signal.workspace_id == workspace_id)).all()
    evaluated = {s.id: s.evaluated_at and evaluate.as_aware(s.evaluated_at) for s in signals}
    return [s.id for s in signals if evaluate.is_due(s, inputs, today, evaluated)]


def test_two_workers_on_postgresql_never_double_process(db, workspace, database_url, tmp_path):
    if not database_url.startswith("postgresql"):
        pytest.skip("several workers are a PostgreSQL deployment (SQLite: one worker)")
    load(db.session, workspace)
    ids = [service.create(db.session, workspace.id, {
        "name": f"s{i}", "conditions": [{"metric": "events", "window_days": 7 + i, "op": "gte",
                                         "value": 2}]}).id for i in range(6)]
    db.session.commit()
    workers = [start_worker(database_url, tmp_path, f"w{i}") for i in range(2)]
    try:
        wait_until(lambda: not _due(db, workspace.id), timeout=60)
        for n in range(4):
            push_over(db, workspace, f"a{n}", users=2)
            time.sleep(0.3)
        wait_until(lambda: not _due(db, workspace.id), timeout=60)
    finally:
        for w in workers:
            stop(w)
    per_signal_backfill = defaultdict(int)
    for sid in ids:
        for entity, kind, backfill in transitions(db, sid):
            per_signal_backfill[(sid, entity)] += backfill
        consistent(db, sid)
    assert max(per_signal_backfill.values()) == 1
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
    assert all("worker started" in text for text in logs)
