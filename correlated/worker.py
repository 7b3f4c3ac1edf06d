"""The background worker: a loop that runs every job in `JOBS`, then sleeps a poll interval.

A job is `job(session, now) -> int` (how much it did; 0 when idle). Jobs keep their own state
in the database and do each unit of work in its own transaction, so a worker killed at any
point leaves nothing half-applied and the next run (this process restarted, or another worker)
picks up where it stopped. Several workers may run against PostgreSQL: units of work are
claimed with advisory locks; on SQLite run one worker.

Other features add their jobs: `from correlated.worker import JOBS; JOBS.append(send_alerts)`.
"""
from __future__ import annotations

import logging
import signal as signals_module
import threading
import time
from datetime import datetime
from typing import Callable

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from .analytics import summaries
from .models import Workspace, utcnow
from .signals import evaluate
from .signals.models import Signal

log = logging.getLogger("correlated.worker")

Job = Callable[[Session, datetime], int]


def refresh_and_evaluate(session: Session, now: datetime) -> int:
    """Refresh the summaries of workspaces with new data, then evaluate each signal whose
    inputs changed (new data, an edit, a new day, a signal it uses); returns the evaluations."""
    done = 0
    for (workspace_id,) in session.execute(sa.select(Workspace.id).order_by(Workspace.id)).all():
        summaries.ensure_fresh(session, workspace_id, now.date())
        done += evaluate_workspace(session, workspace_id, now)
    return done


def evaluate_workspace(session: Session, workspace_id: int, now: datetime) -> int:
    """Evaluate the due signals of one workspace, each after the signals it uses."""
    signals = {s.id: s for s in session.scalars(
        sa.select(Signal).where(Signal.workspace_id == workspace_id))}
    if not signals:
        return 0
    inputs = evaluate.inputs_at(session, workspace_id)
    scores = evaluate.scores_computed(session, workspace_id)  # signals may use scores
    done = 0
    for signal_id in evaluate.order(session, workspace_id):
        signal = signals.get(signal_id)
        evaluated = {**scores, **{sid: s.evaluated_at and evaluate.as_aware(s.evaluated_at)
                                  for sid, s in signals.items()}}
        # A read first: most polls find nothing due and take no lock and no write transaction.
        if signal is None or not evaluate.is_due(signal, inputs, now.date(), evaluated):
            continue
        if evaluate.run(session, workspace_id, signal_id, now) is not None:
            done += 1
        signals[signal_id] = session.get(Signal, (workspace_id, signal_id)) or signal
    session.rollback()  # end the read transaction: the next poll sees new commits (SQLite)
    return done


JOBS: list[Job] = [refresh_and_evaluate]


def run_once(session: Session, now: datetime | None = None) -> int:
    """Run every job once; how much they did in total. A failing job is logged, not fatal."""
    total = 0
    for job in list(JOBS):
        try:
            total += job(session, now or utcnow()) or 0
        except Exception:  # one job's failure must not stop the others, nor the loop
            log.exception("worker job %s failed", getattr(job, "__name__", job))
            session.rollback()
    return total


def run_forever(app: Flask, interval: float, stop: threading.Event | None = None) -> None:
    """Poll until SIGTERM/SIGINT (or `stop`): after a busy pass poll again at once."""
    from .extensions import db

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signals_module.SIGTERM, signals_module.SIGINT):
            signals_module.signal(sig, lambda *_: stop.set())
    log.info("worker started (poll every %.1f s)", interval)
    with app.app_context():
        while not stop.is_set():
            started = time.monotonic()
            did = run_once(db.session)
            db.session.remove()
            if did:
                log.info("worker pass: %d unit(s) of work in %.0f ms", did,
                         (time.monotonic() - started) * 1000)
            else:
                stop.wait(interval)
    log.info("worker stopped")
