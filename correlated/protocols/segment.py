"""Segment-spec tracking API: /v1/identify, group, track, page, screen, alias and batch for
server SDKs; /v1/t, i, p, g, a and b for browser SDKs; /v1/webhook for forwarders.

Any Segment or RudderStack SDK sends here by changing only its host. Each message becomes a
user, account or event row; one request is one Submission (one transaction, one ingest-log
entry). As Segment does, a request that could be read answers 200 `{"success": true}` even
when some messages were rejected (its SDKs drop a 400 with every message in it): those are in
the ingest log with their reasons. /v1/webhook answers what was stored and why the rest was not.
"""
from __future__ import annotations

from typing import Any, NoReturn

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..auth import Principal, authenticate_key, credential_from_request
from ..errors import ApiError
from ..extensions import db
from ..ingest.contract import Outcome, Rejection, Submission
from ..ingest.engine import submit
from ..ingest.fields import describe
from ..ingest.log import MAX_REJECTED
from ..models import utcnow
from .body import current_workspace, json_body, raw_body
from .segment_browser import (BROWSER_KEY_PREFIX, BROWSER_KINDS, any_workspace_allows,
                              browser_workspace, origin_problem, with_cors)
from .segment_spec import (BATCH_KINDS, MAX_MESSAGE_BYTES, check_count, inherit, message_id,
                           messages_of)
from .segment_store import store

bp = Blueprint("segment", __name__, url_prefix="/v1")

CORS_ORIGIN = "correlated.cors_origin"  # the allowed Origin of a browser request
ERROR_CODES = {400: "invalid_request", 401: "invalid_write_key", 403: "origin_not_allowed",
               500: "server_error"}


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
    if kind in BATCH_KINDS and isinstance(body, list):
        body = {"batch": body}  # a forwarder's bare array of messages: the batch itself
    if not isinstance(body, dict):
        raise ApiError(400, f"body: expected a JSON object, got {describe(body)}")
    if not header_key:
        authenticate(body.get("writeKey"))
    check_type(kind, body)
    store(messages_of(kind, body), body, received_at, measure=len(raw) > MAX_MESSAGE_BYTES)
    return jsonify(success=True)


@bp.route("/webhook", methods=["POST", "PUT", "PATCH"])  # each sender lets the user pick
def forward() -> tuple[Response, int]:
    """Segment's Webhooks (Actions) and RudderStack's Webhook destinations: one message or an
    array of them, each read by its own `type`; the answer counts what was stored and why the
    rest was not (400 when nothing was, so the sender shows the failure)."""
    received_at = utcnow()
    authenticate(credential_from_request(), FORWARDER_KEY_HINT)
    body = json_body()
    items = forwarded_messages(body)
    outcome, refused = store(items, body, received_at, measure=True, correct_clock=False)
    answer = forward_answer(len(items), outcome, len(items) - len(refused))
    return jsonify(answer), 200 if answer["success"] else 400


def forward_answer(received: int, outcome: Outcome, stored: int) -> dict[str, Any]:
    answer = {"success": stored > 0 or not received, "received": received, "stored": stored,
              "rejected": [r.to_dict() for r in outcome.rejected[:MAX_REJECTED]]}
    if not answer["success"]:
        more = " (and more; see rejected)" if len(outcome.rejected) > 1 else ""
        answer.update(code="invalid_request",
                      message=f"no message stored: {outcome.rejected[0].reason}{more}")
    return answer


@bp.post("/<any(t, i, p, g, a, b):short>", provide_automatic_options=False)
def receive_browser(short: str) -> Response:
    """analytics.js / analytics-next: a text/plain JSON body with the write key inside, from a
    page at one of the workspace's allowed origins."""
    received_at = utcnow()
    kind = BROWSER_KINDS[short]
    raw = raw_body()
    check_size(kind, raw)
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, f"body: expected a JSON object, got {describe(body)}")
    workspace = browser_workspace(db.session, body.get("writeKey") or credential_from_request())
    g.principal = Principal(workspace.id, "browser", BROWSER_KEY_PREFIX)
    origin = request.headers.get("Origin")
    problem = origin_problem(workspace, origin)
    if problem:
        refuse(body, problem, 403)
    request.environ[CORS_ORIGIN] = origin
    check_type(kind, body)
    store(messages_of(kind, body), body, received_at, measure=len(raw) > MAX_MESSAGE_BYTES)
    return jsonify(success=True)


@bp.route("/<any(t, i, p, g, a, b):short>", methods=["OPTIONS"])
def preflight(short: str) -> Response:
    """A preflight carries no write key: the origin passes if some workspace allows it (the
    POST itself is then held to its own workspace's list)."""
    origin = request.headers.get("Origin")
    if any_workspace_allows(db.session, origin):
        request.environ[CORS_ORIGIN] = origin
    return Response(status=204)


@bp.after_request
def cors(response: Response) -> Response:
    origin = request.environ.get(CORS_ORIGIN)  # this request's own, never a previous one's
    return with_cors(response, origin) if origin else response


def forwarded_messages(body: Any) -> list[Any]:
    """A bare array, `{"batch": [...]}` or one message, within the forwarders' batch size."""
    if isinstance(body, dict) and isinstance(body.get("batch"), list) and "type" not in body:
        items = [inherit(body, message) for message in body["batch"]]
    elif isinstance(body, list):
        items = body
    elif isinstance(body, dict):
        items = [body]
    else:
        raise ApiError(400, f"body: expected a message or an array of messages, got "
                            f"{describe(body)}")
    check_count(len(items))
    return items


SDK_KEY_HINT = ("send your correlated API key as the HTTP Basic user name (empty password) or "
                "as writeKey in the body")
FORWARDER_KEY_HINT = "add the header 'Authorization: Bearer <your correlated API key>'"


def authenticate(key: Any, hint: str = SDK_KEY_HINT) -> None:
    if not isinstance(key, str) or not key:
        raise ApiError(401, f"missing write key: {hint}")
    g.principal = authenticate_key(key)


def check_size(kind: str, raw: bytes) -> None:
    """A single call within Segment's 32 KB; a batch within the server's body limit only."""
    if kind not in BATCH_KINDS and len(raw) > MAX_MESSAGE_BYTES:
        raise ApiError(400, f"body: {len(raw):,} bytes; a {kind} call may be at most "
                            f"{MAX_MESSAGE_BYTES:,} bytes (send larger ones in a batch)")


def check_type(kind: str, body: dict[str, Any]) -> None:
    """A message whose own `type` contradicts its path (a forwarder sending every message to
    one URL) is refused, and logged, rather than stored as the wrong call."""
    own = body.get("type")
    if kind in BATCH_KINDS or own in (None, "", kind):
        return
    refuse(body, f"type: {describe(own)} sent to /v1/{kind}; send each call to its own path, "
                 f"or every message to /v1/webhook, which reads each message's type")


def refuse(body: dict[str, Any], reason: str, status: int = 400) -> NoReturn:
    """Refuse the whole request, and say so in the ingest log (a sender may never show it)."""
    submit(db.session, current_workspace(), Submission(
        "segment", refused=[Rejection(0, message_id(body), reason)], payload=body,
        refusal=reason))
    raise ApiError(status, reason)


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
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    return segment_error(ApiError(413, "body: larger than the server accepts; send smaller "
                                       f"batches (at most {limit:,} bytes)"))
