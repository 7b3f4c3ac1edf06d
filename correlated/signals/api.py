"""REST API of signals (/api/v1/signals): definitions, a preview, members and history.

Key-authenticated like the rest of /api/v1; every lookup is scoped to the key's workspace.
"""
from __future__ import annotations

import base64
import binascii
import csv
import io
from typing import Any, Iterator

import orjson
import sqlalchemy as sa
from apispec import APISpec
from flask import Blueprint, Response, g, jsonify, stream_with_context
from marshmallow import Schema, fields, validate

from ..analytics import summaries
from ..auth import require_key
from ..errors import ApiError
from ..extensions import db
from ..models import Account, User
from ..protocols import schemas
from ..protocols.body import json_body
from ..protocols.body import load_query
from . import service
from .definitions import DefinitionError, describe, parse
from .models import CATEGORIES, Signal, SignalMember, Transition

bp = Blueprint("signals_api", __name__, url_prefix=f"{schemas.API_PREFIX}/signals")
EXPORT_CHUNK = 1000


# --- schemas --------------------------------------------------------------------------------

class SignalIn(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    category = fields.String(validate=validate.OneOf(CATEGORIES))
    object = fields.String(validate=validate.OneOf(["account", "user"]),
                           metadata={"description": "account (default) or user"})
    match = fields.String(validate=validate.OneOf(["all", "any"]))
    conditions = fields.List(fields.Dict(), required=True, metadata={"description": (
        "Each one of: a dimension `{field, op, value}`; a metric over a window `{metric, "
        "window_days, offset_days?, event?, property?, compare?, op, value}`; a dimension change "
        "`{field, changed_to | changed_from | changed, within_days}`; another signal "
        "`{signal, op: in | not_in}`. See docs/signals.md.")})


class SignalOut(Schema):
    id = fields.String()
    name = fields.String()
    category = fields.String()
    object = fields.String()
    match = fields.String()
    conditions = fields.List(fields.Dict())
    created_at = schemas.UTCDateTime()
    updated_at = schemas.UTCDateTime()
    evaluated_at = schemas.UTCDateTime(allow_none=True, metadata={
        "description": "Last evaluation; null until the worker has back-filled it."})
    members = fields.Integer()
    entered_7d = fields.Integer(metadata={"description": "Entries in 7 days (no back-fill)."})
    exited_7d = fields.Integer()


class SignalList(Schema):
    data = fields.List(fields.Nested(SignalOut))


class MemberOut(Schema):
    id = fields.String()
    name = fields.String(allow_none=True, metadata={"description": "Account name or user email."})
    entered_at = schemas.UTCDateTime()
    already_in = fields.Boolean(metadata={"description": "Found by the signal's back-fill."})
    values = fields.Dict(metadata={"description": "What each condition looked at, on entry."})


class MemberPage(Schema):
    data = fields.List(fields.Nested(MemberOut))
    next_cursor = fields.String(allow_none=True)


class TransitionOut(Schema):
    id = fields.Integer()
    entity_id = fields.String()
    kind = fields.String(metadata={"description": "entered or exited"})
    at = schemas.UTCDateTime()
    backfill = fields.Boolean()
    values = fields.Dict()


class HistoryPage(Schema):
    data = fields.List(fields.Nested(TransitionOut))
    next_cursor = fields.String(allow_none=True)


class PreviewSample(Schema):
    id = fields.String()
    values = fields.Dict()


class PreviewOut(Schema):
    count = fields.Integer()
    sample = fields.List(fields.Nested(PreviewSample))


class MembershipOut(Schema):
    id = fields.String()
    name = fields.String()
    category = fields.String()
    entered_at = schemas.UTCDateTime()
    already_in = fields.Boolean()
    values = fields.Dict()


class MembersQuery(schemas.ListQuery):
    pass


class HistoryQuery(Schema):
    since = schemas.Timestamp("Transitions at or after this time.")
    limit = fields.Integer(load_default=schemas.DEFAULT_LIMIT, validate=validate.Range(min=1))
    cursor = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_-]*$"))


# --- routes ---------------------------------------------------------------------------------

@bp.get("")
@require_key()
def list_signals() -> Response:
    """Every signal of the workspace with its counts."""
    ws = g.principal.workspace_id
    counts = service.counts(db.session, ws)
    return jsonify({"data": [out(s, counts) for s in service.of_workspace(db.session, ws)]})


@bp.post("")
@require_key()
def create_signal() -> tuple[Response, int]:
    """Save a new signal; the worker back-fills its members."""
    signal = service.create(db.session, g.principal.workspace_id, _definition_body())
    db.session.commit()
    return jsonify(out(signal, {})), 201


@bp.post("/preview")
@require_key()
def preview() -> Response:
    """Count and a sample of 20 of what a definition matches now, without saving it."""
    ws = g.principal.workspace_id
    body = _definition_body()
    definition = _parse(ws, {"name": "preview", **body} if isinstance(body, dict) else body)
    summaries.ensure_fresh(db.session, ws)
    return jsonify(service.preview(db.session, ws, definition))


@bp.get("/<signal_id>")
@require_key()
def get_signal(signal_id: str) -> Response:
    signal = find(signal_id)
    return jsonify(out(signal, service.counts(db.session, signal.workspace_id)))


@bp.patch("/<signal_id>")
@require_key()
def update_signal(signal_id: str) -> Response:
    """Change a signal; a changed definition is back-filled again."""
    signal = find(signal_id)
    try:
        service.update(db.session, signal, _definition_body())
    except DefinitionError as exc:
        db.session.rollback()
        raise _unprocessable(exc) from None
    db.session.commit()
    return jsonify(out(signal, service.counts(db.session, signal.workspace_id)))


@bp.delete("/<signal_id>")
@require_key()
def delete_signal(signal_id: str) -> tuple[str, int]:
    signal = find(signal_id)
    users = service.users_of(db.session, signal)
    if users:
        raise ApiError(409, "signal is used by " + ", ".join(repr(s.name) for s in users))
    service.delete(db.session, signal)
    db.session.commit()
    return "", 204


@bp.get("/<signal_id>/members")
@require_key()
def members(signal_id: str) -> Response:
    """Current members (keyset pages on the entity ID), or all of them as CSV."""
    signal = find(signal_id)
    args = load_query(MembersQuery)
    query = member_query(signal)
    if args["format"] == "csv":
        return Response(stream_with_context(_csv(query)), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="signal-{signal.id}.csv"'})
    limit = min(args["limit"], schemas.MAX_LIMIT)
    if args.get("cursor"):
        query = query.where(SignalMember.entity_id > decode_cursor("members", args["cursor"]))
    rows = [member_row(r) for r in db.session.execute(query.limit(limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify({"data": MemberOut(many=True).dump(rows),
                    "next_cursor": encode_cursor("members", rows[-1]["id"]) if more else None})


@bp.get("/<signal_id>/history")
@require_key()
def history(signal_id: str) -> Response:
    """Transitions in order (oldest first), from `since`."""
    signal = find(signal_id)
    args = load_query(HistoryQuery)
    t = Transition
    query = sa.select(t).where(t.workspace_id == signal.workspace_id, t.signal_id == signal.id)
    if "since" in args:
        query = query.where(t.at >= args["since"])
    if args.get("cursor"):
        query = query.where(t.id > _history_cursor(args["cursor"]))
    limit = min(args["limit"], schemas.MAX_LIMIT)
    rows = db.session.scalars(query.order_by(t.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify({"data": TransitionOut(many=True).dump(rows),
                    "next_cursor": encode_cursor("history", str(rows[-1].id)) if more else None})


# --- helpers --------------------------------------------------------------------------------

def find(signal_id: str) -> Signal:
    """The caller's signal, or a 404 (also for another workspace's)."""
    signal = db.session.get(Signal, (g.principal.workspace_id, signal_id)) \
        if "\x00" not in signal_id else None
    if signal is None:
        raise ApiError(404, f"no signal with id {signal_id!r}")
    return signal


def _definition_body() -> Any:
    return json_body()


def _parse(workspace_id: int, body: Any):
    try:
        return parse(db.session, workspace_id, body)
    except DefinitionError as exc:
        raise _unprocessable(exc) from None


def _unprocessable(exc: DefinitionError) -> ApiError:
    return ApiError(422, "; ".join(describe(p) for p in exc.problems), problems=exc.problems)


def out(signal: Signal, counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    """A signal as the API shows it."""
    c = counts.get(signal.id, {})
    return SignalOut().dump({
        "id": signal.id, "name": signal.name, "category": signal.category,
        "object": signal.object, "match": signal.match, "conditions": signal.conditions,
        "created_at": signal.created_at, "updated_at": signal.updated_at,
        "evaluated_at": signal.evaluated_at, "members": c.get("members", 0),
        "entered_7d": c.get("entered", 0), "exited_7d": c.get("exited", 0)})


def member_query(signal: Signal) -> sa.Select:
    """Members with their account name or user email, in entity ID order."""
    m = SignalMember
    if signal.object == "account":
        label = sa.select(Account.name).where(Account.workspace_id == m.workspace_id,
                                              Account.account_id == m.entity_id)
    else:
        label = sa.select(User.email).where(User.workspace_id == m.workspace_id,
                                            User.user_id == m.entity_id)
    return (sa.select(m.entity_id, label.scalar_subquery().label("name"), m.entered_at,
                      m.backfill, m.values)
            .where(m.workspace_id == signal.workspace_id, m.signal_id == signal.id)
            .order_by(m.entity_id))


def member_row(row: Any) -> dict[str, Any]:
    return {"id": row[0], "name": row[1], "entered_at": row[2], "already_in": row[3],
            "values": row[4] or {}}


def _csv(query: sa.Select) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "name", "entered_at", "already_in", "values"])
    last = None
    while True:
        page = query if last is None else query.where(SignalMember.entity_id > last)
        rows = [member_row(r) for r in db.session.execute(page.limit(EXPORT_CHUNK))]
        for r in rows:
            writer.writerow([r["id"], r["name"], MemberOut().dump(r)["entered_at"],
                             str(r["already_in"]).lower(), orjson.dumps(r["values"]).decode()])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < EXPORT_CHUNK:
            return
        last = rows[-1]["id"]


def encode_cursor(kind: str, last: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([kind, last])).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> str:
    try:
        got, last = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError):
        got = last = None
    if got != kind or not isinstance(last, str) or "\x00" in last:
        raise ApiError(400, "cursor: not a next_cursor of this list",
                       fields={"cursor": ["Not a next_cursor of this list."]})
    return last


def _history_cursor(cursor: str) -> int:
    last = decode_cursor("history", cursor)
    if not last.isdigit() or len(last) > 18:
        raise ApiError(400, "cursor: not a next_cursor of this list",
                       fields={"cursor": ["Not a next_cursor of this list."]})
    return int(last)


def memberships(workspace_id: int, entity_id: str, obj: str) -> list[dict[str, Any]]:
    """The `signals` of GET /accounts/<id> and /users/<id>."""
    return MembershipOut(many=True).dump(service.signals_of(db.session, workspace_id, entity_id, obj))


def init_app(app) -> None:
    """Register the blueprint and catch definition errors from the service as 422s."""
    from ..extensions import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)
    if openapi_paths not in schemas.EXTRA_PATHS:
        schemas.EXTRA_PATHS.append(openapi_paths)

    @app.errorhandler(DefinitionError)
    def unprocessable(exc: DefinitionError):
        db.session.rollback()
        return _unprocessable(exc).to_response()


# --- the OpenAPI document -------------------------------------------------------------------

def openapi_paths(spec: APISpec) -> None:
    """Add the signal operations to the API's OpenAPI document."""
    for schema in (SignalIn, SignalOut, SignalList, MemberOut, MemberPage, TransitionOut,
                   HistoryPage, PreviewSample, PreviewOut):
        spec.components.schema(schema.__name__, schema=schema)
    prefix = f"{schemas.API_PREFIX}/signals"
    body = {"required": True, "content": schemas.json_content("SignalIn")}
    bad = {"description": "An invalid definition: `problems` names each condition (index) and "
                          "what is wrong.", "content": schemas.json_content("ErrorOut")}
    one = {"description": "The signal", "content": schemas.json_content("SignalOut")}
    key = [{"in": "path", "name": "signal_id", "required": True, "schema": {"type": "string"}}]
    common = {"401": "Unauthorized"}
    spec.path(path=prefix, operations={
        "get": {"summary": "List signals", "operationId": "list_signals", "responses": {
            "200": {"description": "Signals", "content": schemas.json_content("SignalList")},
            **common}},
        "post": {"summary": "Create a signal", "operationId": "create_signal",
                 "requestBody": body, "responses": {"201": one, "400": "BadRequest",
                                                    "413": "TooLarge", "422": bad, **common}}})
    spec.path(path=f"{prefix}/preview", operations={"post": {
        "summary": "Preview a definition: count and a sample of 20, nothing saved",
        "operationId": "preview_signal", "requestBody": body, "responses": {
            "200": {"description": "Count and sample", "content": schemas.json_content("PreviewOut")},
            "400": "BadRequest", "413": "TooLarge", "422": bad, **common}}})
    spec.path(path=f"{prefix}/{{signal_id}}", operations={
        "get": {"summary": "One signal", "operationId": "get_signal", "parameters": key,
                "responses": {"200": one, "404": "NotFound", **common}},
        "patch": {"summary": "Change a signal", "operationId": "update_signal",
                  "parameters": key, "requestBody": {"required": True, "content": schemas.json_content(
                      {"type": "object"})},
                  "responses": {"200": one, "400": "BadRequest", "404": "NotFound",
                                "413": "TooLarge", "422": bad, **common}},
        "delete": {"summary": "Delete a signal", "operationId": "delete_signal", "parameters": key,
                   "responses": {"204": {"description": "Deleted"}, "404": "NotFound",
                                 "409": {"description": "Other signals use it.",
                                         "content": schemas.json_content("ErrorOut")}, **common}}})
    spec.path(path=f"{prefix}/{{signal_id}}/members", operations={"get": {
        "summary": "Current members (JSON pages or CSV)", "operationId": "signal_members",
        "parameters": key + [{"in": "query", "schema": MembersQuery}],
        "responses": {"200": {"description": "A page (JSON) or every member (CSV).", "content": {
            **schemas.json_content("MemberPage"), "text/csv": {"schema": {"type": "string"}}}},
            "400": "BadRequest", "404": "NotFound", **common}}})
    spec.path(path=f"{prefix}/{{signal_id}}/history", operations={"get": {
        "summary": "Entries and exits, oldest first", "operationId": "signal_history",
        "parameters": key + [{"in": "query", "schema": HistoryQuery}],
        "responses": {"200": {"description": "Transitions", "content": schemas.json_content(
            "HistoryPage")}, "400": "BadRequest", "404": "NotFound", **common}}})
