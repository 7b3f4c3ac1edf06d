"""Reading machine request bodies: gzip, size limits, JSON, batch shapes. Shared by every adapter."""
from __future__ import annotations

import json
import re
import zlib
from typing import Any
from urllib.parse import parse_qsl

import orjson
from flask import current_app, g, request
from marshmallow import Schema, ValidationError

from .connections import BATCH_KEYS
from ..errors import ApiError
from ..extensions import db
from ..models import Workspace

# Deeper than any sync sends (the engine stores values nested up to 32 levels), and shallow
# enough that adapters may recurse over a body (merging, measuring) without a RecursionError.
MAX_NESTING = 256
# A number of 19 digits or more: where JSON puts a value (a digit string in quotes is no match).
LONG_NUMBER = re.compile(rb"(?:^|[\[:,])\s*-?[0-9]{19}")


def raw_body() -> bytes:
    """The request body, gunzipped when `Content-Encoding: gzip`, within the size limit."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    data = request.get_data(cache=True)
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        data = gunzip(data, limit)
    return data


def gunzip(data: bytes, limit: int) -> bytes:
    """Every member of a gzip stream (RFC 1952 allows several: `cat a.gz b.gz`), in order,
    refused once more than `limit` bytes come out."""
    out = bytearray()
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise ApiError(400, f"body: not valid gzip ({exc})") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise ApiError(413, f"body: larger than {limit:,} bytes once decompressed")
        if not inflater.eof:
            raise ApiError(400, "body: truncated gzip stream")
        data = inflater.unused_data
        if not data.strip(b"\0"):  # gzip(1) also ends at zero padding
            return bytes(out)


def json_body(require_content_type: bool = False) -> Any:
    """The parsed JSON body, or a 400/413/415 ApiError naming the problem."""
    if require_content_type and not (request.mimetype or "").endswith("json"):
        raise ApiError(415, f"Content-Type: expected application/json, got {request.mimetype or 'none'!r}")
    data = raw_body()
    if not data.strip():
        raise ApiError(400, "body: empty; expected JSON")
    body = parse_json(data)
    if too_deep(body, MAX_NESTING):
        raise ApiError(400, f"body: arrays and objects nested deeper than {MAX_NESTING} levels")
    return body


FORM = "application/x-www-form-urlencoded"
WEBHOOK_BODIES = ("expected a JSON array or object of rows, or application/x-www-form-urlencoded "
                  "fields (one row)")
MAX_FORM_FIELDS = 1000
# A JSON string (skipped whole, so commas inside text stay) or a comma closing a list or object.
TRAILING_COMMA = re.compile(rb'("(?:[^"\\]|\\.)*")|,(\s*[\]}])', re.DOTALL)


def webhook_body() -> Any:
    """A webhook sender's body: JSON, JSON with a trailing comma before `]` or `}` (what a
    Liquid `for` loop in Census's batch template leaves), or form fields (Hightouch's
    form-urlencoded payload: one row). Anything else is a 400 saying what was expected."""
    return read_webhook_body(raw_body(), request.mimetype or "")


def read_webhook_body(data: bytes, mimetype: str) -> Any:
    """`webhook_body` of these bytes (also a held request's, when it is replayed)."""
    if mimetype == FORM:
        return form_row(data)
    if not data.strip():
        raise ApiError(400, f"body: empty; {WEBHOOK_BODIES}")
    try:
        body = parse_json(data)
    except ApiError as exc:
        fixed = TRAILING_COMMA.sub(lambda m: m.group(1) or m.group(2), data)
        try:
            body = parse_json(fixed) if fixed != data else None
        except ApiError:
            body = None
        if body is None:
            raise ApiError(400, f"{exc.message}; {WEBHOOK_BODIES}") from None
    if too_deep(body, MAX_NESTING):
        raise ApiError(400, f"body: arrays and objects nested deeper than {MAX_NESTING} levels")
    return body


def form_row(data: bytes) -> dict[str, Any]:
    """Form fields as one row; a name given several times keeps every value, as a list."""
    try:
        pairs = parse_qsl(data.decode("utf-8"), keep_blank_values=True,
                          max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        raise ApiError(400, "body: form fields are not valid UTF-8") from None
    except ValueError:
        raise ApiError(400, f"body: more than {MAX_FORM_FIELDS:,} form fields") from None
    row: dict[str, Any] = {}
    for name, value in pairs:
        if name in row:
            earlier = row[name]
            row[name] = (earlier if isinstance(earlier, list) else [earlier]) + [value]
        else:
            row[name] = value
    if not row:
        raise ApiError(400, f"body: no form fields; {WEBHOOK_BODIES}")
    return row


def parse_json(data: bytes) -> Any:
    """The JSON value of `data`, integers exact whatever their size, or a 400 ApiError."""
    # orjson turns integers outside 64 bits (19 digits and more) into floats, rounding IDs
    # such as 100000000000000000000001; the standard parser keeps every digit, so the (rare)
    # bodies with such a number go to it.
    if not LONG_NUMBER.search(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    # The standard parser accepts what orjson refuses but we can still judge row by row
    # (NaN, integers beyond 64 bits); only malformed JSON is a 400.
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"body: not valid JSON ({exc})") from None


def too_deep(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (walked without recursion)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def rows_of(body: Any, keys: tuple[str, ...] = BATCH_KEYS) -> list[Any]:
    """A JSON array, a single object, or {"batch"|"rows": [...]} -> a list of rows."""
    if isinstance(body, list):
        rows = body
    elif isinstance(body, dict):
        wrapped = next((body[k] for k in keys if isinstance(body.get(k), list)), None)
        rows = wrapped if wrapped is not None else [body]
    else:
        raise ApiError(400, "body: expected a JSON object or array of objects")
    check_row_limit(len(rows))
    return rows


def check_row_limit(count: int) -> None:
    limit = current_app.config["MAX_ROWS_PER_REQUEST"]
    if count > limit:
        raise ApiError(413, f"too many rows: {count:,} in one request; the limit is {limit:,}")


def current_workspace() -> Workspace:
    """The workspace of the principal authenticated on this request."""
    return db.session.get(Workspace, g.principal.workspace_id)


# --- parameters -----------------------------------------------------------------------------

def load_query(schema: type[Schema]) -> dict[str, Any]:
    """The query string loaded by `schema`, or a 400 naming each bad parameter."""
    return load(schema(), request.args, "query", 400)


def load(schema: Schema, data: Any, where: str, status: int) -> dict[str, Any]:
    try:
        return schema.load(data)
    except ValidationError as exc:
        problems = "; ".join(f"{name}: {' '.join(map(str, messages))}"
                             for name, messages in exc.normalized_messages().items())
        raise ApiError(status, f"{where}: {problems}", fields=exc.normalized_messages()) from None
