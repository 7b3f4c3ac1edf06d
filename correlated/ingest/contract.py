"""The request-level contract: an adapter hands `submit` a Submission and formats its Outcome.

A Submission is one request as the engine needs it: its rows in batches (one object and
operation each), where each row sits in the request, the rows the adapter already refused and
why, the protocol, and the payload the ingest log keeps. The engine validates, writes and logs it
in one transaction; the Outcome tells every row's fate by its position in the request.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Sequence

from ..vocabulary import MODES, OPERATIONS, is_object


@dataclass
class Options:
    """How rows are read; the workspace's own settings always bound these."""

    create_fields: bool | None = None  # False narrows the workspace's setting; never widens it
    remove_action: str = "archive"  # accounts/users: "archive" or "delete"
    default_event_name: str | None = None
    default_timestamp: datetime | None = None  # for protocols that document "received time"
    event_needs_user: bool = True  # False: an account ID alone identifies the event's owner
    aliases: bool = True  # False: only core fields' own names (envelopes that name them, Segment)
    all_or_nothing: bool = False  # True: any rejected row and none is stored (still logged)


@dataclass
class Rejection:
    """A row not stored: its position in the request, its ID when known, and why."""

    index: int
    id: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "reason": self.reason}


@dataclass
class Batch:
    """Rows of one object and operation; `positions[i]` is row i's place in the request (None:
    its place in this batch), `refused` the rows of this object the adapter could not use."""

    object: str
    operation: str | None  # None only in a batch of refused rows (the operation was not valid)
    rows: Sequence[Any]
    positions: Sequence[int] | None = None
    refused: list[Rejection] = field(default_factory=list)

    def position(self, index: int) -> int:
        return index if self.positions is None else self.positions[index]


@dataclass
class Result:
    """What became of one batch."""

    object: str
    operation: str
    received: int = 0
    accepted: int = 0
    created: int = 0
    updated: int = 0
    removed: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    error: str | None = None

    @property
    def changed(self) -> int:
        return self.created + self.updated + self.removed

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": self.object, "operation": self.operation, "received": self.received,
            "accepted": self.accepted, "created": self.created, "updated": self.updated,
            "removed": self.removed, "duplicates": self.duplicates,
            "rejected": [r.to_dict() for r in self.rejected],
        }


# The reason for a rejection in the sender's terms: explain(batch, rejection) -> reason.
Explain = Callable[[Batch, Rejection], str]


@dataclass
class Submission:
    """One request for the engine: `submit` stores its batches and logs it, in one transaction."""

    protocol: str | None  # None: not a request (demo data, benchmarks): no ingest-log entry
    batches: Sequence[Batch] = ()
    refused: list[Rejection] = field(default_factory=list)  # rows of no object at all
    payload: Any = None  # what the ingest log keeps; None: the rows
    options: Options = field(default_factory=Options)
    explain: Explain | None = None
    refusal: str | None = None  # the whole request refused (its configuration): nothing is read

    @property
    def received(self) -> int:
        return len(self.refused) + sum(len(b.rows) + len(b.refused) for b in self.batches)

    def kept_payload(self) -> Any:
        if self.payload is not None:
            return self.payload
        if len(self.batches) == 1:
            return list(self.batches[0].rows)
        return {b.object: list(b.rows) for b in self.batches}


@dataclass
class Outcome:
    """What became of a Submission: a Result per batch (in its order) and every rejected row
    by its position in the request; `error` when the database refused the unit of work."""

    results: list[Result]
    rejected: list[Rejection]
    received: int
    error: str | None = None
    refusal: str | None = None  # all or nothing: rows were rejected, so none was stored

    def total(self, name: str) -> int:
        return sum(getattr(r, name) for r in self.results)


@dataclass
class Record:
    """A validated row: its core columns and its dimensions/properties."""

    index: int
    id: str
    core: dict[str, Any]
    attrs: dict[str, Any]


class RowError(Exception):
    """Why one row cannot be stored (every reason found in it)."""

    def __init__(self, reasons: list[str], row_id: str | None = None):
        super().__init__("; ".join(reasons))
        self.reasons = reasons
        self.row_id = row_id


def refusal(protocol: str, obj: Any, operation: Any, rows: Any, reason: str) -> Submission:
    """A data call refused as a whole (its configuration): every row refused for `reason`, the
    call logged with the rest of the sync's (under its object and operation, when valid),
    nothing read or stored."""
    listed = rows if isinstance(rows, list) else []
    refused = [Rejection(i, None, reason) for i in range(len(listed))]
    if not is_object(obj):
        return Submission(protocol, refused=refused, payload=rows, refusal=reason)
    if operation is None and len(MODES[obj]) == 1:
        operation = MODES[obj][0]  # an object with one mode needs none named
    known = operation if operation in OPERATIONS[obj] else None
    return Submission(protocol, [Batch(obj, known, [], refused=refused)], payload=rows,
                      refusal=reason)
