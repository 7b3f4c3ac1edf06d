"""The one CSV writer: the REST exports and the dashboard lists write every cell through it.

A cell a spreadsheet would read as a formula (=, +, -, @, or a leading tab or carriage return,
which some strip before judging) gets a leading apostrophe, headers included: synced data and
field keys come from outside, and a CSV is opened by people. Numbers stay numbers.
"""
from __future__ import annotations

import csv
import io
import math
import re
from datetime import date, datetime, timezone
from typing import Any, Iterable, Iterator, Sequence

from flask import Response, stream_with_context

from . import database

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
FLUSH_BYTES = 64_000


def cell(value: Any) -> str | int | float:
    """One value as a CSV cell: empty for null, JSON for objects and arrays, ISO 8601 for
    times (UTC when naive), whole floats as integers, text made safe for spreadsheets."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (dict, list)):  # PostgreSQL can hand back integers beyond 64 bits
        return database.json_dumps(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return safe_text(str(value))


def safe_text(text: str) -> str:
    """`=SUM(A1)` -> `'=SUM(A1)`; a number written as text (`-5`, `+1.5e3`) stays as it is."""
    if text.startswith(FORMULA_STARTS) and not NUMBER.fullmatch(text):
        return "'" + text
    return text


def lines(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The header and every row as CSV text, in chunks of about FLUSH_BYTES."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([cell(h) for h in header])
    for row in rows:
        writer.writerow([cell(v) for v in row])
        if buffer.tell() > FLUSH_BYTES:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def response(filename: str, header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> Response:
    """A streamed CSV download (rows are read while the response is sent)."""
    return Response(stream_with_context(lines(header, rows)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
