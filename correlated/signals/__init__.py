"""Signals: saved account and user segments, their members over time, and the hooks that act
on their transitions.

`TRANSITION_HOOKS` are called inside each evaluation's transaction, after its transitions are
written and before the commit, as `hook(session, workspace_id, signal, transitions)`; a hook
that writes (an alert outbox) commits or rolls back with the evaluation. Back-fill transitions
are passed too, flagged `backfill=True`. Evaluations without transitions call no hook.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from .models import Signal, Transition

TransitionHook = Callable[["Session", int, "Signal", "list[Transition]"], None]
TRANSITION_HOOKS: list[TransitionHook] = []
