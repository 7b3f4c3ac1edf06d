"""REST API of scores (/api/v1/scores): models, a preview, and each entity's values.

Key-authenticated like the rest of /api/v1; every lookup is scoped to the key's workspace.
"""
from __future__ import annotations

import csv
import io
from typing import Any, Iterator

from apispec import APISpec
from flask import Blueprint, Response, g, jsonify, stream_with_context
from marshmallow import Schema, fields, validate

from ..analytics import summaries
from ..auth import require_key
from ..errors import ApiError
from ..extensions import db
from ..protocols import schemas
from ..protocols.body import json_body, load_query
from ..signals.api import decode_cursor, encode_cursor
from . import service
from .definitions import ModelError, describe, parse
from .models import ScoreModel, ScoreValue

bp = Blueprint("scores_api", __name__, url_prefix=f"{schemas.API_PREFIX}/scores")
EXPORT_CHUNK = 1000


# --- schemas --------------------------------------------------------------------------------

class ScoreIn(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    object = fields.String(validate=validate.OneOf(["account", "user"]),
                           metadata={"description": "account (default) or user"})
    inputs = fields.List(fields.Dict(), required=True, metadata={"description": (
        "Each `{source, transform, weight?, group?, label?}`. source: a dimension `{field}`, a "
        "metric `{metric, window_days, offset_days?, event?, property?, compare?}` (also "
        "`active_user_share`), or a signal `{signal}`. transform: `{type: minmax, clip?: [p, p], "
        "invert?}`, `{type: bands, bands: [{max, points}, ..., {points}]}`, `{type: bool}`, "
        "`{type: recency, days}`, `{type: map, values: {value: points}, default?}`; points are "
        "0..1. The score is 100 x sum(weight x points) / sum(weights); a missing value counts 0.")})
    tiers = fields.List(fields.Dict(), metadata={
        "description": "`[{name, min}]`: an entity is in the highest tier whose min it reaches."})


class ScoreOut(Schema):
    id = fields.String()
    name = fields.String()
    object = fields.String()
    inputs = fields.List(fields.Dict())
    tiers = fields.List(fields.Dict())
    created_at = schemas.UTCDateTime()
    updated_at = schemas.UTCDateTime()
    computed_at = schemas.UTCDateTime(allow_none=True, metadata={
        "description": "Last computation; null until the worker has computed it."})


class ScoreList(Schema):
    data = fields.List(fields.Nested(ScoreOut))


class ScoreValueOut(Schema):
    id = fields.String()
    name = fields.String(allow_none=True, metadata={"description": "Account name or user email."})
    score = fields.Float()
    tier = fields.String(allow_none=True)
    contributions = fields.List(fields.Dict(), metadata={
        "description": "Per input, in the model's order: label, group, weight, value, points "
                       "(they add up to the score) and missing."})
    computed_at = schemas.UTCDateTime()


class ScoreValuePage(Schema):
    data = fields.List(fields.Nested(ScoreValueOut))
    next_cursor = fields.String(allow_none=True)


class ScorePreviewOut(Schema):
    count = fields.Integer()
    buckets = fields.List(fields.Dict(), metadata={"description": "[{from, to, count}] x 10"})
    tiers = fields.List(fields.Dict(), metadata={"description": "[{name, count}]"})
    top = fields.List(fields.Dict(),
                      metadata={"description": "The 10 highest: id, name, score, tier"})
    bottom = fields.List(fields.Dict(), metadata={"description": "The 10 lowest, lowest first"})


class ScoreValuesQuery(schemas.ListQuery):
    tier = fields.String(validate=validate.Length(min=1, max=64),
                         metadata={"description": "Only the entities in this tier."})


# --- routes ---------------------------------------------------------------------------------

@bp.get("")
@require_key()
def list_scores() -> Response:
    """Every score model of the workspace."""
    return jsonify({"data": [out(m) for m in service.of_workspace(db.session,
                                                                  g.principal.workspace_id)]})


@bp.post("")
@require_key()
def create_score() -> tuple[Response, int]:
    """Save a new model; the worker computes it."""
    model = service.create(db.session, g.principal.workspace_id, json_body())
    db.session.commit()
    return jsonify(out(model)), 201


@bp.post("/preview")
@require_key()
def preview() -> Response:
    """The distribution, tier counts and the top and bottom 10 a model gives, without saving."""
    ws = g.principal.workspace_id
    body = json_body()
    model = parse(db.session, ws, {"name": "preview", **body} if isinstance(body, dict) else body)
    summaries.ensure_fresh(db.session, ws)
    return jsonify(service.preview(db.session, ws, model))


@bp.get("/<model_id>")
@require_key()
def get_score(model_id: str) -> Response:
    return jsonify(out(find(model_id)))


@bp.patch("/<model_id>")
@require_key()
def update_score(model_id: str) -> Response:
    """Change a model; the worker recomputes it."""
    model = find(model_id)
    service.update(db.session, model, json_body())
    db.session.commit()
    return jsonify(out(model))


@bp.delete("/<model_id>")
@require_key()
def delete_score(model_id: str) -> tuple[str, int]:
    model = find(model_id)
    users = service.users_of(db.session, model)
    if users:
        raise ApiError(409, "score is used by signal " + ", ".join(repr(s.name) for s in users))
    service.delete(db.session, model)
    db.session.commit()
    return "", 204


@bp.get("/<model_id>/values")
@require_key()
def values(model_id: str) -> Response:
    """Each entity's score, tier and contributions (keyset pages on the entity ID), or CSV."""
    model = find(model_id)
    args = load_query(ScoreValuesQuery)
    query = service.values_query(model, args.get("tier"))
    labels = service.labels_of(db.session, model)
    if args["format"] == "csv":
        return Response(stream_with_context(_csv(model, query, labels)), mimetype="text/csv",
                        headers={"Content-Disposition":
                                 f'attachment; filename="score-{model.id}.csv"'})
    limit = min(args["limit"], schemas.MAX_LIMIT)
    if args.get("cursor"):
        query = query.where(ScoreValue.entity_id > decode_cursor("scores", args["cursor"]))
    rows = [_row(model, r, labels) for r in db.session.execute(query.limit(limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify({"data": ScoreValueOut(many=True).dump(rows),
                    "next_cursor": encode_cursor("scores", rows[-1]["id"]) if more else None})


# --- helpers --------------------------------------------------------------------------------

def find(model_id: str) -> ScoreModel:
    """The caller's model, or a 404 (also for another workspace's)."""
    model = db.session.get(ScoreModel, (g.principal.workspace_id, model_id)) \
        if "\x00" not in model_id else None
    if model is None:
        raise ApiError(404, f"no score with id {model_id!r}")
    return model


def out(model: ScoreModel) -> dict[str, Any]:
    return ScoreOut().dump({
        "id": model.id, "name": model.name, "object": model.object, "inputs": model.inputs,
        "tiers": model.tiers, "created_at": model.created_at, "updated_at": model.updated_at,
        "computed_at": model.computed_at})


def _row(model: ScoreModel, row: Any, labels: list[str] | None) -> dict[str, Any]:
    explained = service.explain(model, row[2], row[3], row[4], labels)
    return {"id": row[0], "name": row[1], "score": explained["score"], "tier": row[3],
            "contributions": explained["contributions"], "computed_at": row[5]}


def _csv(model: ScoreModel, query: Any, labels: list[str] | None) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    names = labels or [service.label_of(item, i) for i, item in enumerate(model.inputs)]
    writer.writerow(["id", "name", "score", "tier", "computed_at",
                     *(f"{n} (points)" for n in names),
                     *(f"{n} (value)" for n in names)])
    last = None
    while True:
        page = query if last is None else query.where(ScoreValue.entity_id > last)
        rows = [_row(model, r, labels) for r in db.session.execute(page.limit(EXPORT_CHUNK))]
        for r in rows:
            parts = r["contributions"]
            writer.writerow([r["id"], r["name"], r["score"], r["tier"] or "",
                             ScoreValueOut().dump(r)["computed_at"], *(p["points"] for p in parts),
                             *("" if p["value"] is None else p["value"] for p in parts)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < EXPORT_CHUNK:
            return
        last = rows[-1]["id"]


def _unprocessable(exc: ModelError) -> ApiError:
    return ApiError(422, "; ".join(describe(p) for p in exc.problems), problems=exc.problems)


def scores_of_record(workspace_id: int, entity_id: str, obj: str) -> list[dict[str, Any]]:
    """The `scores` of GET /accounts/<id> and /users/<id>."""
    return ScoreOfRecord(many=True).dump(service.scores_of(db.session, workspace_id,
                                                              entity_id, obj))


class ScoreOfRecord(Schema):
    id = fields.String(metadata={"description": "The score model's id."})
    name = fields.String()
    score = fields.Float()
    tier = fields.String(allow_none=True)
    contributions = fields.List(fields.Dict())
    computed_at = schemas.UTCDateTime()


def init_app(app) -> None:
    """Register the blueprint and answer model errors from the service as 422s."""
    from ..extensions import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)
    if openapi_paths not in schemas.EXTRA_PATHS:
        schemas.EXTRA_PATHS.append(openapi_paths)

    @app.errorhandler(ModelError)
    def unprocessable(exc: ModelError):
        db.session.rollback()
        return _unprocessable(exc).to_response()


# --- the OpenAPI document -------------------------------------------------------------------

def openapi_paths(spec: APISpec) -> None:
    """Add the score operations to the API's OpenAPI document."""
    for schema in (ScoreIn, ScoreOut, ScoreList, ScoreValueOut, ScoreValuePage, ScorePreviewOut):
        spec.components.schema(schema.__name__, schema=schema)
    prefix = f"{schemas.API_PREFIX}/scores"
    body = {"required": True, "content": schemas.json_content("ScoreIn")}
    bad = {"description": "An invalid model: `problems` names each input (index), its part and "
                          "what is wrong.", "content": schemas.json_content("ErrorOut")}
    one = {"description": "The model", "content": schemas.json_content("ScoreOut")}
    key = [{"in": "path", "name": "model_id", "required": True, "schema": {"type": "string"}}]
    common = {"401": "Unauthorized"}
    spec.path(path=prefix, operations={
        "get": {"summary": "List score models", "operationId": "list_scores", "responses": {
            "200": {"description": "Models", "content": schemas.json_content("ScoreList")},
            **common}},
        "post": {"summary": "Create a score model", "operationId": "create_score",
                 "requestBody": body, "responses": {"201": one, "400": "BadRequest",
                                                    "413": "TooLarge", "422": bad, **common}}})
    spec.path(path=f"{prefix}/preview", operations={"post": {
        "summary": "Preview a model: histogram, tier counts, top and bottom 10; nothing saved",
        "operationId": "preview_score", "requestBody": body, "responses": {
            "200": {"description": "The distribution",
                    "content": schemas.json_content("ScorePreviewOut")},
            "400": "BadRequest", "413": "TooLarge", "422": bad, **common}}})
    spec.path(path=f"{prefix}/{{model_id}}", operations={
        "get": {"summary": "One score model", "operationId": "get_score", "parameters": key,
                "responses": {"200": one, "404": "NotFound", **common}},
        "patch": {"summary": "Change a score model", "operationId": "update_score",
                  "parameters": key, "requestBody": {"required": True, "content":
                                                     schemas.json_content({"type": "object"})},
                  "responses": {"200": one, "400": "BadRequest", "404": "NotFound",
                                "413": "TooLarge", "422": bad, **common}},
        "delete": {"summary": "Delete a score model", "operationId": "delete_score",
                   "parameters": key, "responses": {"204": {"description": "Deleted"},
                                                    "404": "NotFound",
                                                    "409": {"description": "Signals use it.",
                                                            "content": schemas.json_content(
                                                                "ErrorOut")}, **common}}})
    spec.path(path=f"{prefix}/{{model_id}}/values", operations={"get": {
        "summary": "Each entity's score, tier and contributions (JSON pages or CSV)",
        "operationId": "score_values",
        "parameters": key + [{"in": "query", "schema": ScoreValuesQuery}],
        "responses": {"200": {"description": "A page (JSON) or every value (CSV).", "content": {
            **schemas.json_content("ScoreValuePage"), "text/csv": {"schema": {"type": "string"}}}},
            "400": "BadRequest", "404": "NotFound", **common}}})
