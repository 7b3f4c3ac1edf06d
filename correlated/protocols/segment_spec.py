"""Segment's spec, read: a request's messages (batch fields inherited, sizes checked) and each
message's rows (identify -> a user, group -> an account and its user's link, track/page/screen
-> an event), in our core fields' own names."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import current_app

from ..errors import ApiError
from ..ingest.engine import merge_patch
from ..ingest.fields import Invalid, can_create, describe, parse_timestamp

TYPES = ("identify", "group", "track", "page", "screen", "alias")
BATCH_KINDS = ("batch", "import")
MAX_MESSAGE_BYTES = 32 * 1024  # Segment's limits; its SDKs check the same numbers client-side
# Segment's Webhooks (Actions) destination batches up to 4,000 messages (RudderStack's fewer).
MAX_MESSAGES = 4000
# Segment's reserved camelCase traits that name one of our default dimensions.
RESERVED_TRAITS = {"firstName": "first_name", "lastName": "last_name", "createdAt": "created_at"}


# --- envelope -------------------------------------------------------------------------------

def messages_of(kind: str, body: dict[str, Any]) -> list[Any]:
    """The request's messages, batch-level fields merged in; a batch item that is not a usable
    message stays as it is, for `item_problem` to refuse on its own."""
    if kind not in BATCH_KINDS:
        return [{**body, "type": kind}]
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise ApiError(400, f"batch: expected an array of messages, got {describe(batch)}")
    check_count(len(batch))
    return [inherit(body, message) for message in batch]


def check_count(count: int) -> None:
    """Segment bounds a batch by bytes only, and RudderStack's SDKs send up to 4 MB: allow a
    batch the largest a forwarder sends (the body limit bounds it too)."""
    limit = max(current_app.config["MAX_ROWS_PER_REQUEST"], MAX_MESSAGES)
    if count > limit:
        raise ApiError(413, f"too many messages: {count:,} in one request; the limit is "
                            f"{limit:,} (send smaller batches)")


def inherit(body: dict[str, Any], message: Any) -> Any:
    """A batch item with the batch's context, integrations and sentAt (its own keys win)."""
    if not isinstance(message, dict):
        return message
    out = dict(message)
    for key in ("context", "integrations"):
        if isinstance(body.get(key), dict):
            out[key] = merge_patch(body[key], as_dict(message.get(key)))
    if out.get("sentAt") in (None, "") and body.get("sentAt") not in (None, ""):
        out["sentAt"] = body["sentAt"]
    return out


def item_problem(message: Any, measure: bool) -> str | None:
    """Why a batch item is no message at all (so it is refused alone), or None; `measure`:
    check its size (only a body over 32 KB can hold a message over 32 KB)."""
    if not isinstance(message, dict):
        return f"object: expected a message object, got {describe(message)}"
    if message.get("type") not in TYPES:
        return f"type: expected one of {', '.join(TYPES)}; got {describe(message.get('type'))}"
    # ASCII-escaped as the SDKs measure it: its length is its size, even for a lone surrogate.
    size = len(json.dumps(message, separators=(",", ":"), default=str)) if measure else 0
    if size > MAX_MESSAGE_BYTES:
        return f"message of {size:,} bytes; a message may be at most {MAX_MESSAGE_BYTES:,} bytes"
    return None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# --- rows -----------------------------------------------------------------------------------

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


def message_id(message: Any) -> str | None:
    value = message.get("messageId") if isinstance(message, dict) else None
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


def event_row(message: dict[str, Any], received_at: datetime,
              correct_clock: bool = True) -> dict[str, Any]:
    """track/page/screen -> an event; messageId makes a resend a duplicate."""
    properties = as_dict(message.get("properties"))
    name = message.get("event")
    if message["type"] in ("page", "screen"):
        properties = given(properties, name=message.get("name"),
                           category=message.get("category"))
        name = view_name(message)
    return given(properties, event=name, user_id=message["userId"],
                 timestamp=event_time(message, received_at, correct_clock),
                 event_id=message_id(message),
                 account_id=as_dict(message.get("context")).get("groupId"))


def view_name(message: dict[str, Any]) -> str:
    label = "Page Viewed" if message["type"] == "page" else "Screen Viewed"
    name = message.get("name")
    return f"{label}: {name}" if name not in (None, "") else label


def event_time(message: dict[str, Any], received_at: datetime, correct_clock: bool = True) -> Any:
    """Segment's rule: receivedAt - (sentAt - timestamp), correcting the sender's clock skew.
    A forwarded message's `timestamp` is already corrected (by Segment or RudderStack, which
    may deliver it much later): it is taken as it is."""
    original = message.get("timestamp")
    if original in (None, ""):
        original = message.get("originalTimestamp")
    if original in (None, ""):
        return received_at
    sent = message.get("sentAt")
    if sent in (None, "") or not correct_clock:
        return original
    try:
        return received_at - (parse_timestamp(sent) - parse_timestamp(original))
    except (Invalid, OverflowError):
        return original  # the engine names a bad timestamp; a bad sentAt only skips the correction
