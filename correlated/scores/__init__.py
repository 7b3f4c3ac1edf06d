"""Scores: transparent weighted models of accounts and users (fit, health, ...), each entity's
score with the points every input gave it, and a daily history.

Computed by the worker (`evaluate.compute_due`, a `worker.JOBS` entry) after the signals'
evaluations, since an input may be a signal's membership.
"""
from __future__ import annotations


def register() -> None:
    """Add the scores' job to the worker, after the signals' (once per process)."""
    from .. import worker
    from .evaluate import compute_due

    if compute_due not in worker.JOBS:
        worker.JOBS.insert(worker.JOBS.index(worker.refresh_and_evaluate) + 1, compute_due)
