"""Inbound webhooks: Hightouch's webhook / HTTP Request destination posting batches of rows.

`POST /hightouch/webhook` (Miso style): any key, each row's object detected from its columns.
`POST /webhooks/<connection_id>` (Variance style): a connection's own URL, header and mapping.
Both hand the request to the engine as one Submission and answer with Miso's status codes.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, g, jsonify, request

from .. import database
from ..auth import Principal, require_key
from ..errors import ApiError
from ..extensions import db
from ..ingest import fields
from ..ingest.contract import Batch, Outcome, Rejection, Submission, refusal
from ..ingest.engine import submit
from ..models import HeldPayload, Workspace, utcnow
from ..vocabulary import parse_object
from . import connections
from .body import (check_row_limit, current_workspace, raw_body, read_webhook_body,
                   rows_of, webhook_body)

bp = Blueprint("webhooks", __name__)

REMOVED_FLAG = "_removed"
# Every method these senders let a sync pick (Hightouch and Census HTTP Request, Segment's
# Webhooks (Actions)): POST, PUT and PATCH upsert, DELETE removes.
METHODS = ["POST", "PUT", "PATCH", "DELETE"]
TRUE, FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


# --- the quick endpoint ---------------------------------------------------------------------

@bp.route("/hightouch/webhook", methods=METHODS)
@require_key(query_param="token")
def hightouch_webhook():
    """A batch of rows of any object (detected per row, or forced with `?object=`)."""
    received_at = utcnow()
    body = webhook_body()
    rows = rows_of(body)
    forced = _forced_object(request.args.get("object"))
    submission = detect(rows, forced, remove=request.method == "DELETE", received_at=received_at)
    submission.payload = body
    submission.options.all_or_nothing = _flag_param("all_or_nothing")
    outcome = submit(db.session, current_workspace(), submission)
    return respond(outcome, _timestamp_note(submission, received_at))


def _flag_param(name: str) -> bool:
    value = request.args.get(name, "").strip().lower()
    if value not in TRUE + FALSE:
        raise ApiError(400, f"{name}: expected true or false, got {value!r}")
    return value in TRUE


def _forced_object(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    obj = parse_object(value)
    if obj is None:
        raise ApiError(400, f"object: expected account, user or event, got {value!r}")
    return obj


def _keys_for(obj: str, target: str) -> frozenset[str]:
    """The lower-cased column names the engine reads as `target` of `obj`."""
    return frozenset(k for k, t in fields.alias_map(obj).items() if t == target)


EVENT_KEYS = _keys_for("event", "event")
TIME_KEYS = _keys_for("event", "timestamp")
USER_KEYS = _keys_for("user", "user_id")
ACCOUNT_KEYS = _keys_for("account", "account_id")
UNDETECTED = ("object: cannot tell what this row is: send event (or event_name) for an event, "
              "user_id for a user, account_id for an account, or add "
              "?object=account|user|event to the URL")


def object_of(row: Any) -> str | None:
    """event (or event_name) -> event, with or without a timestamp (the time received stands
    in); else user_id -> user; else account_id -> account."""
    keys = _given_keys(row)
    if keys & EVENT_KEYS:
        return "event"
    if keys & USER_KEYS:
        return "user"
    if keys & ACCOUNT_KEYS:
        return "account"
    return None


def _given_keys(row: dict[str, Any]) -> set[str]:
    return {str(k).strip().lower() for k, v in row.items() if v not in (None, "")}


def detect(rows: list[Any], forced: str | None, remove: bool,
           received_at: datetime | None = None) -> Submission:
    """Sort rows into batches by object and operation; undetectable rows are refused here.
    An event without a timestamp is taken to have happened when it was received."""
    submission = Submission("webhook")
    submission.options.default_timestamp = received_at or utcnow()
    batches: dict[tuple[str, str], Batch] = {}
    for position, row in enumerate(rows):
        obj = forced or (object_of(row) if isinstance(row, dict) else None)
        if obj is None:
            reason = UNDETECTED if isinstance(row, dict) else \
                f"row: expected a JSON object, got {fields.describe(row)}"
            submission.refused.append(Rejection(position, None, reason))
            continue
        flagged = isinstance(row, dict) and row.get(REMOVED_FLAG) is True
        if isinstance(row, dict) and REMOVED_FLAG in row:
            row = {k: v for k, v in row.items() if k != REMOVED_FLAG}
        operation = "remove" if remove or flagged else ("insert" if obj == "event" else "upsert")
        batch = batches.setdefault((obj, operation), Batch(obj, operation, [], []))
        batch.rows.append(row)  # type: ignore[attr-defined]
        batch.positions.append(position)  # type: ignore[union-attr]
    submission.batches = list(batches.values())
    return submission


def _timestamp_note(submission: Submission, received_at: datetime) -> str | None:
    """Say so when events were given the time received as their timestamp."""
    undated = sum(1 for batch in submission.batches if batch.object == "event"
                  and batch.operation != "remove" for row in batch.rows
                  if isinstance(row, dict) and not _given_keys(row) & TIME_KEYS)
    if not undated:
        return None
    return (f"{undated:,} event{'s' if undated > 1 else ''} without a timestamp: stored with the "
            f"time received, {received_at.isoformat().replace('+00:00', 'Z')}")


# --- answering -----------------------------------------------------------------------------

def respond(outcome: Outcome, note: str | None = None) -> Response:
    """Miso's codes: 201 written, 202 removed, 204 unchanged, 422 nothing storable (or, all or
    nothing, a row rejected), 500 fault."""
    body = {
        "received": outcome.received, "accepted": outcome.total("accepted"),
        "created": outcome.total("created"), "updated": outcome.total("updated"),
        "removed": outcome.total("removed"), "duplicates": outcome.total("duplicates"),
        "rejected": [r.to_dict() for r in outcome.rejected],
    }
    if note:
        body["notes"] = [note]
    if outcome.error:
        current_app.logger.error("webhook batch failed: %s", outcome.error)
        return _json({"error": "the batch could not be stored; nothing was written", **body}, 500)
    if outcome.refusal:
        return _json({"error": f"{outcome.refusal}; fix the rejected rows and send the batch "
                               "again", **body}, 422)
    if outcome.rejected and not body["accepted"]:
        return _json({"error": "no row could be stored", **body}, 422)
    if body["created"] or body["updated"]:
        return _json(body, 201)
    if body["removed"]:
        return _json(body, 202)
    if note:  # 204 has no body, and the note must be read
        return _json(body, 200)
    return Response(status=204)


def _json(body: dict[str, Any], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


# --- connections ----------------------------------------------------------------------------

@bp.route("/webhooks/<connection_id>", methods=METHODS)
def connection_webhook(connection_id: str):
    """A connection's URL: check its header, keep the payload, and write it (or, while the
    connection is disabled, hold it for replay)."""
    connection = connections.connection_by_id(db.session, connection_id)
    if connection is None:
        raise ApiError(404, "no webhook connection at this URL")
    if connection.enforce_auth and not connections.authorized(
            connection, request.headers.get("Authorization")):
        raise ApiError(401, "Authorization header: missing or not this connection's value")
    # The connection stands for its workspace on this request (request logs, metrics).
    g.principal = Principal(workspace_id=connection.workspace_id, kind="connection",
                            name=connection.name)
    body = webhook_body()
    received_at = utcnow()
    connections.keep_payload(connection, body, received_at)
    if not connection.enabled:
        return _hold(connection, received_at)
    db.session.commit()
    return respond(_deliver(connection, body, received_at, request.method))


def _hold(connection: connections.WebhookConnection, received_at: datetime) -> Response:
    limit = current_app.config.get("HELD_PAYLOADS_PER_CONNECTION", connections.HELD_MAX)
    held = connections.hold(db.session, connection, raw_body(), request.content_type or "",
                            request.method, received_at, limit)
    db.session.commit()  # the latest payload, and the held request if there was room
    if held is None:
        error = ApiError(503, f"the connection is disabled and already holds {limit:,} requests; "
                              "enable it (save its mapping) and replay them, then send again")
        error.headers["Retry-After"] = "300"
        raise error
    return _json({"enabled": False, "written": 0, "held": held, "message": (
        "the connection is disabled: this request is held (nothing written yet) and kept as the "
        "latest payload; save the mapping, then replay the held requests to write them")}, 202)


def _deliver(connection: connections.WebhookConnection, body: Any, received_at: datetime,
             method: str) -> Outcome:
    workspace = db.session.get(Workspace, connection.workspace_id)
    try:
        rows = connections.extract_rows(body, (connection.mapping or {}).get("wrapper"))
    except connections.PayloadError as exc:  # refused, and listed in the ingest log as such
        submit(db.session, workspace, refusal("connection", connection.object, None, body,
                                              str(exc)))
        raise ApiError(422, str(exc)) from None
    check_row_limit(len(rows))
    submission = connections.submission(db.session, connection, rows,
                                        remove=method == "DELETE",
                                        received_at=received_at)
    submission.payload = body
    return submit(db.session, workspace, submission)


# --- replaying held requests ---------------------------------------------------------------

def replay(connection: connections.WebhookConnection) -> dict[str, Any]:
    """Write the requests a connection held while disabled, oldest first, each as the request
    it was (its method, its received time) with the mapping saved since. A request written is
    no longer held; one refused or failed stays held, to replay again after a fix. Replaying
    twice is harmless: upserts are idempotent and events de-duplicate."""
    if not connection.enabled:
        raise ApiError(409, "the connection is disabled: save its mapping (or enable it) first")
    results = []
    for held_id in connections.held_ids(db.session, connection):
        held = db.session.get(HeldPayload, held_id)
        if held is None:  # replayed meanwhile by another request
            continue
        result = _replay_one(connection, held)
        if result["replayed"]:
            database.begin_write(db.session)  # the write after submit's commit, as its own
            db.session.execute(sa.delete(HeldPayload).where(HeldPayload.id == held_id))
            db.session.commit()
        results.append(result)
    return {"replayed": sum(r["replayed"] for r in results),
            "held": connections.held_count(db.session, connection), "requests": results}


def _replay_one(connection: connections.WebhookConnection, held: HeldPayload) -> dict[str, Any]:
    received_at, method = held.received_at, held.method
    if received_at.tzinfo is None:  # SQLite returns naive datetimes
        received_at = received_at.replace(tzinfo=timezone.utc)
    base = {"received_at": received_at.isoformat(), "method": method}
    try:
        mimetype = held.content_type.split(";")[0].strip().lower()
        body = read_webhook_body(held.body, mimetype)
        outcome = _deliver(connection, body, received_at, method)
    except ApiError as exc:
        return {**base, "replayed": False, "error": exc.message}
    problem = outcome.error or outcome.refusal
    return {**base, "replayed": problem is None, "error": problem,
            "accepted": outcome.total("accepted"), "rejected": len(outcome.rejected)}


# --- where senders find us ------------------------------------------------------------------

def public_base_url() -> str:
    """This server's address as senders reach it: PUBLIC_URL, else the request's host."""
    return (current_app.config.get("PUBLIC_URL") or request.host_url).rstrip("/")


def connection_url(connection: connections.WebhookConnection) -> str:
    return f"{public_base_url()}/webhooks/{connection.id}"
