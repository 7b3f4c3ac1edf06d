"""Segment-spec tracking API: /v1/identify, group, track, page, screen, alias and batch.

Any Segment or RudderStack SDK sends here by changing only its host. Each message becomes a
user, account or event row; one request is one Submission (one transaction, one ingest-log
entry). As Segment does, an accepted request answers 200 `{"success": true}` even when
some messages were rejected: those are in the ingest log with their reasons.
"""
from __future__ import annotations

import json
from datetime import datetime
from functools import partial
from typing import Any

from flask import Blueprint, Response, g, jsonify
from werkzeug.exceptions import RequestEntityTooLarge

from ..auth import authenticate_key, credential_from_request
from ..errors import ApiError
from ..extensions import db
from ..ingest.contract import Batch, Options, Rejection, Submission
from ..ingest.engine import merge_patch, submit
from ..ingest.fields import Invalid, can_create, describe, parse_timestamp
from ..models import utcnow
from .body import check_row_limit, current_workspace, json_body, raw_body

bp = Blueprint("segment", __name__, url_prefix="/v1")

TYPES = ("identify", "group", "track", "page", "screen", "alias")
MAX_MESSAGE_BYTES = 32 * 1024  # Segment's limits; its SDKs check the same numbers client-side
MAX_BATCH_BYTES = 500 * 1024
# Batch order: a group's user link (an update) runs after that request's identifies (upserts).
ORDER = (("account", "upsert"), ("account", "update"), ("user", "upsert"), ("user", "update"),
         ("event", "insert"))
# Segment's reserved camelCase traits that name one of our default dimensions.
RESERVED_TRAITS = {"firstName": "first_name", "lastName": "last_name", "createdAt": "created_at"}
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


# --- envelope -------------------------------------------------------------------------------

def messages_of(kind: str, body: dict[str, Any], big: bool = False) -> list[dict[str, Any]]:
    """The request's messages, each with its type, and batch-level fields merged in."""
    if kind not in ("batch", "import"):
        return [{**body, "type": kind}]
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise ApiError(400, f"batch: expected an array of messages, got {describe(batch)}")
    check_row_limit(len(batch))
    messages = [inherit(body, index, message) for index, message in enumerate(batch)]
    if big:  # only a body over 32 KB can hold a message over 32 KB
        for index, message in enumerate(batch):
            check_message_size(index, message)
    return messages


def inherit(body: dict[str, Any], index: int, message: Any) -> dict[str, Any]:
    """A batch item with the batch's context, integrations and sentAt (its own keys win)."""
    if not isinstance(message, dict):
        raise ApiError(400, f"batch[{index}]: expected a message object, got {describe(message)}")
    if message.get("type") not in TYPES:
        raise ApiError(400, f"batch[{index}].type: expected one of {', '.join(TYPES)}; "
                            f"got {describe(message.get('type'))}")
    out = dict(message)
    for key in ("context", "integrations"):
        if isinstance(body.get(key), dict):
            out[key] = merge_patch(body[key], as_dict(message.get(key)))
    if out.get("sentAt") in (None, ""):
        out["sentAt"] = body.get("sentAt")
    return out


def check_message_size(index: int, message: dict[str, Any]) -> None:
    # ASCII-escaped as the SDKs measure it: its length is its size, even for a lone surrogate.
    size = len(json.dumps(message, separators=(",", ":"), default=str))
    if size > MAX_MESSAGE_BYTES:
        raise ApiError(400, f"batch[{index}]: message of {size:,} bytes; a message may be at "
                            f"most {MAX_MESSAGE_BYTES:,} bytes")


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


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


def envelope_problem(message: dict[str, Any]) -> str | None:
    """What makes a message unusable before its values are even looked at, or None."""
    kind = message["type"]
    if kind == "group" and message.get("groupId") in (None, ""):
        return "groupId: required"
    if kind not in ("group", "alias") and message.get("userId") in (None, ""):
        if message.get("anonymousId") not in (None, ""):
            return ("userId: required; a message with only an anonymousId is not stored "
                    "(correlated keeps activity of known users)")
        return "userId: required"
    payload = "properties" if kind in ("track", "page", "screen") else "traits"
    if message.get(payload) is not None and not isinstance(message[payload], dict):
        return f"{payload}: expected an object, got {describe(message[payload])}"
    return None


def message_id(message: dict[str, Any]) -> str | None:
    value = message.get("messageId")
    return None if value in (None, "") else str(value)


def given(row: dict[str, Any], **core: Any) -> dict[str, Any]:
    """The row with the envelope's values on top; a trait or property fills only a gap."""
    return {**row, **{k: v for k, v in core.items() if v not in (None, "")}}


def traits_of(message: dict[str, Any]) -> dict[str, Any]:
    """The message's traits; RudderStack's SDKs send an identify's traits in context.traits."""
    traits = as_dict(message.get("traits"))
    if message["type"] == "identify":
        traits = {**as_dict(as_dict(message.get("context")).get("traits")), **traits}
    return {RESERVED_TRAITS[k] if k in RESERVED_TRAITS and RESERVED_TRAITS[k] not in traits
            else k: v for k, v in traits.items()}


def identify_row(message: dict[str, Any]) -> tuple[tuple[str, str], dict[str, Any]]:
    """identify -> a user; without an email it can only update a user we already have."""
    traits = traits_of(message)
    company = as_dict(traits.get("company")).get("id")
    row = given(traits, user_id=message["userId"],
                account_id=company or as_dict(message.get("context")).get("groupId"))
    return ("user", "upsert" if can_create("user", row) else "update"), row


def group_rows(message: dict[str, Any]) -> list[tuple[tuple[str, str], dict[str, Any]]]:
    """group -> an account, and the link of its userId to that account."""
    row = given(traits_of(message), account_id=message["groupId"])
    rows = [(("account", "upsert" if can_create("account", row) else "update"), row)]
    if message.get("userId") not in (None, ""):
        rows.append((("user", "update"),
                     {"user_id": message["userId"], "account_id": message["groupId"]}))
    return rows


def event_row(message: dict[str, Any], received_at: datetime) -> dict[str, Any]:
    """track/page/screen -> an event; messageId makes a resend a duplicate."""
    properties = as_dict(message.get("properties"))
    name = message.get("event")
    if message["type"] in ("page", "screen"):
        properties = given(properties, name=message.get("name"),
                           category=message.get("category"))
        name = view_name(message)
    return given(properties, event=name, user_id=message["userId"],
                 timestamp=event_time(message, received_at), event_id=message_id(message),
                 account_id=as_dict(message.get("context")).get("groupId"))


def view_name(message: dict[str, Any]) -> str:
    label = "Page Viewed" if message["type"] == "page" else "Screen Viewed"
    name = message.get("name")
    return f"{label}: {name}" if name not in (None, "") else label


def event_time(message: dict[str, Any], received_at: datetime) -> Any:
    """Segment's rule: receivedAt - (sentAt - timestamp), correcting the sender's clock skew."""
    original = message.get("timestamp")
    if original in (None, ""):
        original = message.get("originalTimestamp")
    if original in (None, ""):
        return received_at
    sent = message.get("sentAt")
    if sent in (None, ""):
        return original
    try:
        return received_at - (parse_timestamp(sent) - parse_timestamp(original))
    except (Invalid, OverflowError):
        return original  # the engine names a bad timestamp; a bad sentAt only skips the correction


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
