"""The ingest log: one entry per request, with counts, rejected rows and the latest payload."""
from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy.orm import Session

from .models import IngestLog

if TYPE_CHECKING:
    from .ingest import Result

MAX_REJECTED = 100
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_DEPTH = 12
SECRET_KEYS = re.compile(r"(write_?key|token|password|secret|authorization|api_?key|"
                         r"census_authentication)", re.IGNORECASE)
REDACTED = "[redacted]"


def write_log(session: Session, workspace_id: int, protocol: str, results: Sequence[Result],
              payload: Any = None, error: str | None = None) -> IngestLog:
    """Add one entry summing `results` (the caller commits)."""
    rejected = [r.to_dict() for result in results for r in result.rejected]
    entry = IngestLog(
        workspace_id=workspace_id,
        protocol=protocol,
        object=_one({r.object for r in results}),
        operation=_one({r.operation for r in results}),
        rows_received=sum(r.received for r in results),
        rows_accepted=sum(r.accepted for r in results),
        rows_rejected=len(rejected),
        rejected_sample=rejected[:MAX_REJECTED],
        payload=keepable(payload),
        error=error,
    )
    session.add(entry)
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
            used += len(json.dumps(clean, default=str))
            if used > MAX_PAYLOAD_BYTES:
                return {"truncated": True, "rows": len(payload), "head": head}
            head.append(clean)
        return head
    clean = sanitize(payload)
    text = json.dumps(clean, default=str)
    if len(text) <= MAX_PAYLOAD_BYTES:
        return clean
    return {"truncated": True, "bytes": len(text), "head": text[:MAX_PAYLOAD_BYTES]}


def sanitize(value: Any, depth: int = 0) -> Any:
    """JSON both databases accept: no NaN/Infinity, no NUL, no lone surrogates, bounded depth."""
    if depth > MAX_DEPTH:
        return "[nested too deep]"
    if isinstance(value, dict):
        return {_text(str(k)): REDACTED if SECRET_KEYS.search(str(k)) else sanitize(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(v, depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return str(value)
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _text(str(value))


def _text(text: str) -> str:
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
