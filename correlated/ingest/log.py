"""The ingest log: one entry per request, with counts, rejected rows and the latest payload."""
from __future__ import annotations

import functools
import math
import re
from typing import Any, Callable

import orjson
from sqlalchemy.orm import Session

from ..models import IngestLog
from .contract import Outcome

MAX_REJECTED = 100
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_DEPTH = 12
SECRET_KEYS = re.compile(r"(write_?key|token|password|secret|authorization|api_?key|"
                         r"census_authentication)", re.IGNORECASE)
REDACTED = "[redacted]"
OUTCOMES = ("created", "updated", "removed", "duplicates")  # what accepted rows did
# Called as hook(protocol, outcome) for every entry written (observability counts rows here,
# so rows an adapter refused before the engine are counted too).
WRITE_HOOKS: list[Callable[[str, Outcome], None]] = []


def write_log(session: Session, workspace_id: int, protocol: str, outcome: Outcome,
              payload: Any = None, error: str | None = None) -> IngestLog:
    """Add the request's one entry (the caller commits, with the data)."""
    results = outcome.results
    entry = IngestLog(
        workspace_id=workspace_id,
        protocol=protocol,
        object=_one({r.object for r in results}),
        operation=_one({r.operation for r in results}),
        rows_received=outcome.received,
        rows_accepted=outcome.total("accepted"),
        rows_rejected=len(outcome.rejected),
        rejected_sample=[r.to_dict() for r in outcome.rejected[:MAX_REJECTED]],
        payload=keepable(payload),
        error=error,
        counts={k: sum(getattr(r, k) for r in results) for k in OUTCOMES},
    )
    session.add(entry)
    for hook in WRITE_HOOKS:
        hook(protocol, outcome)
    return entry


def _one(values: set[str]) -> str | None:
    if not values:
        return None
    return values.pop() if len(values) == 1 else "mixed"


def keepable(payload: Any) -> Any:
    """The payload with secrets redacted, unstorable values cleaned, and cut to a sane size.

    Lists are cut row by row, so a 1,000-row batch costs only the rows that are kept.
    """
    if isinstance(payload, (list, tuple)):
        head, used = [], 0
        for item in payload:
            clean = sanitize(item)
            used += len(_dumps(clean))
            if used > MAX_PAYLOAD_BYTES:
                return {"truncated": True, "rows": len(payload), "head": head}
            head.append(clean)
        return head
    clean = sanitize(payload)
    text = _dumps(clean).decode()
    if len(text) <= MAX_PAYLOAD_BYTES:
        return clean
    return {"truncated": True, "bytes": len(text), "head": text[:MAX_PAYLOAD_BYTES]}


def _dumps(clean: Any) -> bytes:
    """Compact JSON of a sanitized value (orjson accepts all of it: big integers became text)."""
    return orjson.dumps(clean, default=str)


def sanitize(value: Any, depth: int = 0) -> Any:
    """JSON both databases accept: no NaN/Infinity, no NUL, no lone surrogates, bounded depth."""
    if depth > MAX_DEPTH:
        return "[nested too deep]"
    kind = type(value)  # exact types first: this runs for every value of up to 64 KB of rows
    if kind is str:
        return value if value.isascii() and "\x00" not in value else _text(value)
    if kind is dict:
        out = {}
        for k, v in value.items():
            key, secret = _key(k if type(k) is str else str(k))
            out[key] = REDACTED if secret else sanitize(v, depth + 1)
        return out
    if kind is list or kind is tuple:
        return [sanitize(v, depth + 1) for v in value]
    if value is None or kind is bool:
        return value
    if kind is int:
        return str(value) if abs(value) >= 2**63 else value
    if kind is float:
        return value if math.isfinite(value) else None
    return _sanitize_other(value, depth)


def _sanitize_other(value: Any, depth: int) -> Any:
    """Subclasses of the JSON types (and anything else), the slow and general way."""
    if isinstance(value, dict):
        return sanitize(dict(value), depth)
    if isinstance(value, (list, tuple)):
        return sanitize(list(value), depth)
    if isinstance(value, int):
        return sanitize(int(value), depth)
    if isinstance(value, float):
        return sanitize(float(value), depth)
    return _text(str(value))


@functools.lru_cache(maxsize=4096)
def _key(key: str) -> tuple[str, bool]:
    """A clean object key and whether it names a secret (rows repeat their keys: cached)."""
    return _text(key), bool(SECRET_KEYS.search(key))


def _text(text: str) -> str:
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
