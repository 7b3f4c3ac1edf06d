"""REST routes for webhook connections: /api/v1/connections (key auth, the key's workspace)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify

from . import connections
from ..auth import require_key
from ..errors import ApiError
from ..extensions import db
from ..models import WebhookConnection
from .body import json_body
from .webhooks import connection_url, replay

bp = Blueprint("connections_api", __name__, url_prefix="/api/v1/connections")


def to_dict(connection: WebhookConnection, detail: bool = False,
            held: int | None = None) -> dict[str, Any]:
    """What the API shows of a connection (the header value too: key holders may set it up);
    `held`: its count of held requests when the caller has it (a list counts them at once)."""
    data = {
        "id": connection.id, "name": connection.name, "object": connection.object,
        "behavior": connection.behavior, "enabled": connection.enabled,
        "enforce_auth": connection.enforce_auth,
        "all_or_nothing": bool(connection.all_or_nothing), "url": connection_url(connection),
        "authorization_header": {"name": "Authorization", "value": connection.auth_token},
        "mapping": connection.mapping or {},
        "latest_payload_at": _iso(connection.latest_payload_at),
        "held_requests": connections.held_count(db.session, connection) if held is None
        else held,
        "created_at": _iso(connection.created_at),
    }
    if detail:
        wrapper = connections.suggested_wrapper(connection)
        data["latest_payload"] = connection.latest_payload
        data["suggested_wrapper"] = wrapper
        data["payload_keys"] = connections.payload_keys(connection.latest_payload, wrapper)
    return data


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _connection(connection_id: str) -> WebhookConnection:
    return connections.get_connection_or_404(db.session, g.principal.workspace_id, connection_id)


def _object_body() -> dict[str, Any]:
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "body: expected a JSON object")
    return body


def _invalid(exc: connections.Invalid) -> ApiError:
    return ApiError(422, "invalid connection settings", errors=exc.errors)


@bp.get("")
@require_key()
def list_all():
    found = connections.list_connections(db.session, g.principal.workspace_id)
    held = connections.held_counts(db.session, g.principal.workspace_id)
    return jsonify({"connections": [to_dict(c, held=held.get(c.id, 0)) for c in found]})


@bp.post("")
@require_key()
def create():
    body = _object_body()
    settings = {k: v for k, v in body.items() if k not in ("name", "object")}
    try:
        connection = connections.create_connection(
            db.session, g.principal.workspace_id, body.get("name"), body.get("object"), **settings)
    except connections.Invalid as exc:
        raise _invalid(exc) from None
    db.session.commit()
    return jsonify(to_dict(connection, detail=True)), 201


@bp.get("/<connection_id>")
@require_key()
def show(connection_id: str):
    return jsonify(to_dict(_connection(connection_id), detail=True))


@bp.route("/<connection_id>", methods=["PATCH", "PUT"])
@require_key()
def update(connection_id: str):
    connection = _connection(connection_id)
    try:
        connections.update_connection(connection, _object_body())
    except connections.Invalid as exc:
        raise _invalid(exc) from None
    db.session.commit()
    return jsonify(to_dict(connection, detail=True))


@bp.post("/<connection_id>/rotate-token")
@require_key()
def rotate(connection_id: str):
    connection = _connection(connection_id)
    connections.rotate_token(connection)
    db.session.commit()
    return jsonify(to_dict(connection))


@bp.post("/<connection_id>/replay")
@require_key()
def replay_held(connection_id: str):
    """Write the requests the connection held while it was disabled (409 while it still is)."""
    return jsonify(replay(_connection(connection_id)))


@bp.delete("/<connection_id>")
@require_key()
def delete(connection_id: str):
    db.session.delete(_connection(connection_id))
    db.session.commit()
    return "", 204
