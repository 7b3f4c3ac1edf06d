"""Segment-spec tracking API: /v1/identify, group, track, page, screen, alias and batch.

Any Segment or RudderStack SDK sends here by changing only its host. Each message becomes a
user, account or event row; one request is one Submission (one transaction, one ingest-log
entry). As Segment does, an accepted request answers 200 `{"success": true}` even when
some messages were rejected: those are in the ingest log with their reasons.
"""
from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from flask import Blueprint, Response, g, jsonify
from werkzeug.exceptions import RequestEntityTooLarge

from ..auth import authenticate_key, credential_from_request
from ..errors import ApiError
from ..extensions import db
from ..ingest.contract import Batch, Options, Rejection, Submission
from ..ingest.engine import submit
from ..ingest.fields import describe
from ..models import utcnow
from .body import current_workspace, json_body, raw_body
from .segment_spec import (MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, envelope_problem, event_row,
                           group_rows, identify_row, message_id, messages_of)

bp = Blueprint("segment", __name__, url_prefix="/v1")

# Batch order: a group's user link (an update) runs after that request's identifies (upserts).
ORDER = (("account", "upsert"), ("account", "update"), ("user", "upsert"), ("user", "update"),
         ("event", "insert"))
ERROR_CODES = {400: "invalid_request", 401: "invalid_write_key", 500: "server_error"}


@bp.post("/<any(identify, group, track, page, screen, alias, batch, import):kind>")
def receive(kind: str) -> Response:
    """One Segment call or batch: authenticate, check limits, map, store, answer."""
    received_at = utcnow()
    header_key = credential_from_request()
    if header_key:
        authenticate(header_key)  # before reading a body the caller may not send us
    raw = raw_body()
    check_size(kind, raw)
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, f"body: expected a JSON object, got {describe(body)}")
    if not header_key:
        authenticate(body.get("writeKey"))
    messages = messages_of(kind, body, big=len(raw) > MAX_MESSAGE_BYTES)
    outcome = submit(db.session, current_workspace(), submission(messages, body, received_at))
    if outcome.error:
        raise ApiError(500, f"{outcome.error}; nothing was stored, send again")
    return jsonify(success=True)


def authenticate(key: Any) -> None:
    if not isinstance(key, str) or not key:
        raise ApiError(401, "missing write key: send your correlated API key as the HTTP Basic "
                            "user name (empty password) or as writeKey in the body")
    g.principal = authenticate_key(key)


def check_size(kind: str, raw: bytes) -> None:
    limit = MAX_BATCH_BYTES if kind in ("batch", "import") else MAX_MESSAGE_BYTES
    if len(raw) > limit:
        raise ApiError(400, f"body: {len(raw):,} bytes; a {kind} request may be at most "
                            f"{limit:,} bytes")


# --- storing --------------------------------------------------------------------------------

def submission(messages: list[dict[str, Any]], body: dict[str, Any],
               received_at: datetime) -> Submission:
    """The messages as engine batches; the body is what the ingest log keeps."""
    batches = {key: Batch(*key, [], []) for key in ORDER}
    for index, message in enumerate(messages):
        add_message(batches, index, message, received_at)
    return Submission("segment", [b for b in batches.values() if b.rows or b.refused],
                      payload=body, options=Options(aliases=False),
                      explain=partial(explain, messages))


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
                received_at: datetime) -> None:
    """Add the rows of one message to their batches, or refuse it with the reason."""
    kind = message["type"]
    problem = envelope_problem(message)
    if problem:
        target = {"identify": ("user", "upsert"), "group": ("account", "upsert")}.get(
            kind, ("event", "insert"))
        batches[target].refused.append(Rejection(index, message_id(message),
                                                 f"{kind}: {problem}"))
        return
    if kind == "identify":
        rows = [identify_row(message)]
    elif kind == "group":
        rows = group_rows(message)
    else:  # alias: accepted and kept in the log's payload; nothing to store
        rows = [] if kind == "alias" else [(("event", "insert"), event_row(message, received_at))]
    for key, row in rows:
        batches[key].rows.append(row)  # type: ignore[attr-defined]
        batches[key].positions.append(index)  # type: ignore[union-attr]


# --- errors in Segment's shape --------------------------------------------------------------

@bp.errorhandler(ApiError)
def segment_error(error: ApiError) -> Response:
    """JSON with `code` and `message` (what the SDKs read); too large is a 400, as in Segment."""
    status = 400 if error.status == 413 else error.status
    response = jsonify({"success": False, "code": ERROR_CODES.get(status, "error"),
                        "message": error.message, "error": error.message, **error.extra})
    response.status_code = status
    response.headers.update(error.headers)
    return response


@bp.errorhandler(RequestEntityTooLarge)
def body_too_large(_error: RequestEntityTooLarge) -> Response:
    return segment_error(ApiError(413, "body: larger than the server accepts; send smaller "
                                       f"batches (at most {MAX_BATCH_BYTES:,} bytes)"))
