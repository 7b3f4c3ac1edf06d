"""Alerts: destinations, rules, and the outbox that delivers signal transitions to Slack,
signed webhooks and email.

`enqueue` writes deliveries in the caller's transaction (the signal evaluation's); `deliver_due`
sends them, from the worker or `correlated alerts deliver`.
"""
from typing import Any

__all__ = ["TransitionEvent", "deliver_due", "enqueue"]


def __getattr__(name: str) -> Any:
    # Imported lazily: correlated.models imports alerts.models while the app's modules are
    # still loading, and the services depend on those modules.
    if name == "deliver_due":
        from .outbox import deliver_due

        return deliver_due
    if name in ("enqueue", "TransitionEvent"):
        from . import rules

        return getattr(rules, name)
    raise AttributeError(name)
