"""Inbound webhooks: Hightouch's webhook / HTTP Request destination posting batches of rows.

`POST /hightouch/webhook` (Miso style): any key, each row's object detected from its columns.
`POST /webhooks/<connection_id>` (Variance style): a connection's own URL, header and mapping.
Both hand the request to the engine as one Submission and answer with Miso's status codes.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from ..auth import Principal, require_key
from ..errors import ApiError
from ..extensions import db
from ..ingest import fields
from ..ingest.contract import Batch, Outcome, Rejection, Submission, refusal
from ..ingest.engine import submit
from ..models import Workspace, utcnow
from ..vocabulary import parse_object
from . import connections
from .body import check_row_limit, current_workspace, json_body, rows_of

bp = Blueprint("webhooks", __name__)

REMOVED_FLAG = "_removed"


# --- the quick endpoint ---------------------------------------------------------------------

@bp.route("/hightouch/webhook", methods=["POST", "DELETE"])
@require_key(query_param="token")
def hightouch_webhook():
    """A batch of rows of any object (detected per row, or forced with `?object=`)."""
    body = json_body()
    rows = rows_of(body)
    forced = _forced_object(request.args.get("object"))
    submission = detect(rows, forced, remove=request.method == "DELETE")
    submission.payload = body
    return respond(submit(db.session, current_workspace(), submission))


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
UNDETECTED = ("object: cannot tell what this row is: send event (or event_name) with a timestamp "
              "for an event, user_id for a user, account_id for an account, or add "
              "?object=account|user|event to the URL")


def object_of(row: Any) -> str | None:
    """event (or event_name) with a timestamp -> event; else user_id -> user; else account_id."""
    keys = {str(k).strip().lower() for k, v in row.items() if v not in (None, "")}
    if keys & EVENT_KEYS and keys & TIME_KEYS:
        return "event"
    if keys & USER_KEYS:
        return "user"
    if keys & ACCOUNT_KEYS:
        return "account"
    return None


def detect(rows: list[Any], forced: str | None, remove: bool) -> Submission:
    """Sort rows into batches by object and operation; undetectable rows are refused here."""
    submission = Submission("webhook")
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


# --- answering -----------------------------------------------------------------------------

def respond(outcome: Outcome) -> Response:
    """Miso's codes: 201 written, 202 removed, 204 unchanged, 422 nothing storable, 500 fault."""
    body = {
        "received": outcome.received, "accepted": outcome.total("accepted"),
        "created": outcome.total("created"), "updated": outcome.total("updated"),
        "removed": outcome.total("removed"), "duplicates": outcome.total("duplicates"),
        "rejected": [r.to_dict() for r in outcome.rejected],
    }
    if outcome.error:
        current_app.logger.error("webhook batch failed: %s", outcome.error)
        return _json({"error": "the batch could not be stored; nothing was written", **body}, 500)
    if outcome.rejected and not body["accepted"]:
        return _json({"error": "no row could be stored", **body}, 422)
    if body["created"] or body["updated"]:
        return _json(body, 201)
    if body["removed"]:
        return _json(body, 202)
    return Response(status=204)


def _json(body: dict[str, Any], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


# --- connections ----------------------------------------------------------------------------

@bp.route("/webhooks/<connection_id>", methods=["POST", "DELETE"])
def connection_webhook(connection_id: str):
    """A connection's URL: check its header, keep the payload, and write it once enabled."""
    connection = connections.connection_by_id(db.session, connection_id)
    if connection is None:
        raise ApiError(404, "no webhook connection at this URL")
    if connection.enforce_auth and not connections.authorized(
            connection, request.headers.get("Authorization")):
        raise ApiError(401, "Authorization header: missing or not this connection's value")
    # The connection stands for its workspace on this request (request logs, metrics).
    g.principal = Principal(workspace_id=connection.workspace_id, kind="connection",
                            name=connection.name)
    body = json_body()
    received_at = utcnow()
    connections.keep_payload(connection, body, received_at)
    db.session.commit()
    if not connection.enabled:
        return _json({"enabled": False, "written": 0, "message": (
            "payload received and kept as the connection's latest payload; nothing is written "
            "until the connection is enabled")}, 202)
    return respond(_deliver(connection, body, received_at))


def _deliver(connection: connections.WebhookConnection, body: Any, received_at) -> Outcome:
    workspace = db.session.get(Workspace, connection.workspace_id)
    try:
        rows = connections.extract_rows(body, (connection.mapping or {}).get("wrapper"))
    except connections.PayloadError as exc:  # refused, and listed in the ingest log as such
        submit(db.session, workspace, refusal("connection", connection.object, None, body,
                                              str(exc)))
        raise ApiError(422, str(exc)) from None
    check_row_limit(len(rows))
    submission = connections.submission(db.session, connection, rows,
                                        remove=request.method == "DELETE",
                                        received_at=received_at)
    submission.payload = body
    return submit(db.session, workspace, submission)


# --- where senders find us ------------------------------------------------------------------

def public_base_url() -> str:
    """This server's address as senders reach it: PUBLIC_URL, else the request's host."""
    return (current_app.config.get("PUBLIC_URL") or request.host_url).rstrip("/")


def connection_url(connection: connections.WebhookConnection) -> str:
    return f"{public_base_url()}/webhooks/{connection.id}"
