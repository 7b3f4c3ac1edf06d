"""REST routes for alerts (key auth, the key's workspace): /api/v1/destinations,
/api/v1/alert-rules and /api/v1/deliveries."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, g, jsonify, request

from ..auth import require_key
from ..errors import ApiError
from ..extensions import db
from ..protocols.body import json_body
from . import destinations, outbox, rules
from .models import STATUSES, aware
from .settings import current

bp = Blueprint("alerts_api", __name__, url_prefix="/api/v1")
MAX_LIMIT = 200


def jsonable(value: Any) -> Any:
    """Datetimes as ISO 8601 UTC, inside any dict or list."""
    if isinstance(value, datetime):
        return aware(value).isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def _object_body() -> dict[str, Any]:
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "body: expected a JSON object")
    return body


def _invalid(exc: destinations.Invalid) -> ApiError:
    return ApiError(422, str(exc), errors=exc.errors)


def _destination_or_404(destination_id: str):
    found = destinations.find_destination(db.session, g.principal.workspace_id, destination_id)
    if found is None:
        raise ApiError(404, "no such destination in this workspace")
    return found


# --- destinations ---------------------------------------------------------------------------

@bp.get("/destinations")
@require_key()
def list_destinations():
    found = destinations.list_destinations(db.session, g.principal.workspace_id)
    return jsonify({"destinations": [jsonable(destinations.to_dict(d)) for d in found]})


@bp.post("/destinations")
@require_key()
def create_destination():
    """Create; a webhook's signing secret is in this answer only (masked afterwards)."""
    body = _object_body()
    target = body.get("address") if body.get("kind") == "email" else body.get("url")
    try:
        made = destinations.create_destination(db.session, g.principal.workspace_id,
                                               body.get("name"), body.get("kind"), target,
                                               current())
    except destinations.Invalid as exc:
        raise _invalid(exc) from None
    db.session.commit()
    return jsonify(jsonable(destinations.to_dict(made, reveal_secret=True))), 201


@bp.delete("/destinations/<destination_id>")
@require_key()
def delete_destination(destination_id: str):
    """Delete it with its rules and deliveries."""
    db.session.delete(_destination_or_404(destination_id))
    db.session.commit()
    return "", 204


@bp.post("/destinations/<destination_id>/test")
@require_key()
def test_destination(destination_id: str):
    """Send a test message now and answer how it went (the delivery and its attempt)."""
    delivery = outbox.send_test(db.session, _destination_or_404(destination_id))
    [(found, attempts)] = outbox.with_attempts(db.session, g.principal.workspace_id, [delivery])
    return jsonify(jsonable(outbox.delivery_to_dict(found, attempts)))


@bp.post("/destinations/<destination_id>/rotate-secret")
@require_key()
def rotate_secret(destination_id: str):
    """A new secret (shown in this answer only); the old one signs too for 24 hours."""
    destination = _destination_or_404(destination_id)
    try:
        destinations.rotate_secret(destination)
    except destinations.Invalid as exc:
        raise _invalid(exc) from None
    db.session.commit()
    return jsonify(jsonable(destinations.to_dict(destination, reveal_secret=True)))


# --- rules ----------------------------------------------------------------------------------

@bp.get("/alert-rules")
@require_key()
def list_rules():
    signal_id = request.args.get("signal_id")
    found = rules.list_rules(db.session, g.principal.workspace_id, signal_id)
    return jsonify({"alert_rules": [jsonable(rules.rule_to_dict(r)) for r in found]})


@bp.post("/alert-rules")
@require_key()
def create_rule():
    try:
        rule = rules.create_rule(db.session, g.principal.workspace_id, _object_body())
    except destinations.Invalid as exc:
        raise _invalid(exc) from None
    db.session.commit()
    return jsonify(jsonable(rules.rule_to_dict(rule))), 201


@bp.delete("/alert-rules/<rule_id>")
@require_key()
def delete_rule(rule_id: str):
    rule = rules.find_rule(db.session, g.principal.workspace_id, rule_id)
    if rule is None:
        raise ApiError(404, "no such alert rule in this workspace")
    db.session.delete(rule)
    db.session.commit()
    return "", 204


# --- deliveries -----------------------------------------------------------------------------

@bp.get("/deliveries")
@require_key()
def list_deliveries():
    """The latest deliveries, newest first, each with its attempts."""
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError(400, f"status: must be one of {', '.join(STATUSES)}")
    limit = request.args.get("limit", "50")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        raise ApiError(400, f"limit: an integer from 1 to {MAX_LIMIT}")
    destination_id = request.args.get("destination_id")
    if destination_id is not None and not destinations.storable(destination_id):
        raise ApiError(400, "destination_id: not a destination id")
    found = outbox.list_deliveries(db.session, g.principal.workspace_id, status,
                                   destination_id, int(limit))
    return jsonify({"deliveries": [jsonable(outbox.delivery_to_dict(d, a)) for d, a in found]})


@bp.post("/deliveries/<delivery_id>/resend")
@require_key()
def resend(delivery_id: str):
    """Queue a failed delivery again, with the same webhook-id."""
    try:
        delivery = outbox.resend(db.session, g.principal.workspace_id, delivery_id)
    except destinations.Invalid as exc:
        raise ApiError(409, str(exc), errors=exc.errors) from None
    if delivery is None:
        raise ApiError(404, "no such delivery in this workspace")
    db.session.commit()
    return jsonify(jsonable(outbox.delivery_to_dict(delivery, []))), 202
