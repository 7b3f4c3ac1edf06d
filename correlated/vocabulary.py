"""The words every layer shares: the objects, their ID fields, what may be done to them, and how
people name them (their tables: models.RECORDS). No imports of our own: anything may import this."""
from __future__ import annotations

from typing import Any

OBJECTS = ("account", "user", "event")  # also the write order of a unit of work
ID_FIELD = {"account": "account_id", "user": "user_id", "event": "event_id"}
COLLECTION = {"account": "accounts", "user": "users", "event": "events"}  # REST paths
# What the engine does to each object; `remove` archives or deletes.
OPERATIONS = {
    "account": ("upsert", "update", "remove"),
    "user": ("upsert", "update", "remove"),
    "event": ("insert", "remove"),
}
# What a sync may choose (rows that leave a sync's model are removed by its own call).
MODES = {obj: tuple(op for op in ops if op != "remove") for obj, ops in OPERATIONS.items()}
DEFAULT_MODE = {obj: modes[0] for obj, modes in MODES.items()}
# The names senders use for an object, lower-cased.
NAMES = {"account": "account", "accounts": "account", "user": "user", "users": "user",
         "contact": "user", "contacts": "user", "event": "event", "events": "event"}
# The metrics kept per account and per user (account_metrics / user_metrics); `trend` is
# derived from events_30d and events_prev_30d, `last_seen` is a time, the others are counts.
ACCOUNT_METRICS = ("users", "active_users_7d", "active_users_30d", "events_30d",
                   "events_prev_30d", "last_seen")
USER_METRICS = ("active_days_30d", "events_30d", "events_prev_30d", "last_seen")
DERIVED_METRICS = ("trend",)
DATE_METRICS = ("last_seen",)
EVENT_NAME_MAX = 255  # the events.event column is VARCHAR(255)
TEXT_MAX = 512  # other core text columns (an account's name)


def is_object(value: Any) -> bool:
    """Whether `value` is exactly an object's name ("account", "user", "event")."""
    return isinstance(value, str) and value in ID_FIELD


def parse_object(value: Any) -> str | None:
    """The object a sender's name means (`Accounts`, ` contact `), or None."""
    return NAMES.get(value.strip().lower()) if isinstance(value, str) else None
