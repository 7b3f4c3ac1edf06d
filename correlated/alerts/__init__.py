"""Alerts: destinations, rules, and the outbox that delivers signal transitions to Slack,
signed webhooks and email.

`enqueue` writes deliveries in the caller's transaction (the signal evaluation's); `deliver_due`
sends them, from the worker or `correlated alerts deliver`.
"""
from .outbox import deliver_due  # noqa: E402
from .rules import TransitionEvent, enqueue  # noqa: E402

__all__ = ["TransitionEvent", "deliver_due", "enqueue"]
