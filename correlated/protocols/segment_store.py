"""Segment messages into one Submission: each message's rows in their batches, or its refusal
with the reason, stored in one transaction with one ingest-log entry."""
from __future__ import annotations

from collections import Counter
from datetime import datetime
from functools import partial
from typing import Any

from ..errors import ApiError
from ..extensions import db
from ..ingest.contract import Batch, Options, Outcome, Rejection, Submission
from ..ingest.engine import submit
from .body import current_workspace
from .segment_spec import (envelope_problem, event_row, group_rows, identify_row, item_problem,
                           message_id)

# Batch order: a group's user link (an update) runs after that request's identifies (upserts).
ORDER = (("account", "upsert"), ("account", "update"), ("user", "upsert"), ("user", "update"),
         ("event", "insert"))


def store(messages: list[Any], payload: Any, received_at: datetime, measure: bool,
          correct_clock: bool = True) -> tuple[Outcome, set[int]]:
    """Store the messages as one Submission; the outcome and the positions of the messages of
    which nothing was kept. A database error is a 500: nothing was stored, send again."""
    batches = {key: Batch(*key, [], []) for key in ORDER}
    refused: list[Rejection] = []
    rows = [0] * len(messages)
    for index, message in enumerate(messages):
        problem = item_problem(message, measure)
        if problem:
            refused.append(Rejection(index, message_id(message), problem))
            continue
        rows[index] = add_message(batches, index, message, received_at, correct_clock)
    submission = Submission("segment", [b for b in batches.values() if b.rows or b.refused],
                            refused=refused, payload=payload, options=Options(aliases=False),
                            explain=partial(explain, messages))
    outcome = submit(db.session, current_workspace(), submission)
    if outcome.error:
        raise ApiError(500, f"{outcome.error}; nothing was stored, send again")
    rejected = Counter(r.index for r in outcome.rejected)
    return outcome, {i for i, n in rejected.items() if n >= max(rows[i], 1)}


def explain(messages: list[dict[str, Any]], batch: Batch, rejection: Rejection) -> str:
    """An engine rejection told for the message it came from, in the sender's terms."""
    message = messages[rejection.index]
    reason = rejection.reason
    if reason.startswith("no ") and batch.operation == "update":
        reason += f" ({UPDATE_HINTS[batch.object, message['type']]})"
    return f"{message['type']}: {reason}"


UPDATE_HINTS = {
    ("user", "identify"): "a new user needs traits.email",
    ("user", "group"): "identify the user with traits.email before grouping it",
    ("account", "group"): "a new account needs traits.name",
}


def add_message(batches: dict[tuple[str, str], Batch], index: int, message: dict[str, Any],
                received_at: datetime, correct_clock: bool) -> int:
    """Add the rows of one message to their batches, or refuse it with the reason; how many
    rows it made."""
    kind = message["type"]
    problem = envelope_problem(message)
    if problem:
        target = {"identify": ("user", "upsert"), "group": ("account", "upsert")}.get(
            kind, ("event", "insert"))
        batches[target].refused.append(Rejection(index, message_id(message),
                                                 f"{kind}: {problem}"))
        return 0
    if kind == "identify":
        rows = [identify_row(message)]
    elif kind == "group":
        rows = group_rows(message)
    else:  # alias: accepted and kept in the log's payload; nothing to store
        rows = [] if kind == "alias" else [
            (("event", "insert"), event_row(message, received_at, correct_clock))]
    for key, row in rows:
        batches[key].rows.append(row)  # type: ignore[attr-defined]
        batches[key].positions.append(index)  # type: ignore[union-attr]
    return len(rows)
