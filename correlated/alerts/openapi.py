"""The alert routes in the OpenAPI document (`add_paths`, called by protocols.schemas.openapi)."""
from __future__ import annotations

from typing import Any

from apispec import APISpec

from .models import DESTINATION_KINDS, RULE_ON, STATUSES

PREFIX = "/api/v1"
TIME = {"type": "string", "format": "date-time"}


def nullable(shape: dict[str, Any]) -> dict[str, Any]:
    return {**shape, "nullable": True}


SCHEMAS: dict[str, dict[str, Any]] = {
    "DestinationIn": {"type": "object", "required": ["name", "kind"], "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 120},
        "kind": {"type": "string", "enum": list(DESTINATION_KINDS)},
        "url": {"type": "string", "maxLength": 2048,
                "description": "slack and webhook: the URL (public addresses only)"},
        "address": {"type": "string", "maxLength": 2048, "description": "email: the address"}}},
    "DestinationOut": {"type": "object", "properties": {
        "id": {"type": "string"}, "name": {"type": "string"},
        "kind": {"type": "string", "enum": list(DESTINATION_KINDS)},
        "url": {"type": "string", "description": "masked for Slack (the URL is the credential)"},
        "address": {"type": "string"},
        "secret": nullable({"type": "string", "description": "webhooks: the whsec_ signing "
                            "secret, in full only when created or rotated, masked after"}),
        "previous_secret_expires_at": nullable(TIME), "created_at": TIME}},
    "RuleIn": {"type": "object", "required": ["signal_id", "destination_id"],
               "additionalProperties": False, "properties": {
                   "signal_id": {"type": "string", "minLength": 1, "maxLength": 64},
                   "on": {"type": "string", "enum": list(RULE_ON), "default": "enter"},
                   "destination_id": {"type": "string"},
                   "cooldown_days": {"type": "integer", "minimum": 0, "maximum": 365,
                                     "default": 1},
                   "owner_dimension": nullable({"type": "string", "maxLength": 128}),
                   "digest_threshold": {"type": "integer", "minimum": 1, "maximum": 10000,
                                        "default": 10}}},
    "RuleOut": {"type": "object", "properties": {
        "id": {"type": "string"}, "signal_id": {"type": "string"},
        "on": {"type": "string", "enum": list(RULE_ON)}, "destination_id": {"type": "string"},
        "cooldown_days": {"type": "integer"}, "owner_dimension": nullable({"type": "string"}),
        "digest_threshold": {"type": "integer"}, "created_at": TIME}},
    "AttemptOut": {"type": "object", "properties": {
        "at": TIME, "status": {"type": "string", "enum": ["delivered", "retry", "failed"]},
        "response_code": nullable({"type": "integer"}),
        "response_snippet": nullable({"type": "string"}), "error": nullable({"type": "string"}),
        "duration_ms": nullable({"type": "integer"})}},
    "DeliveryOut": {"type": "object", "properties": {
        "id": {"type": "string", "description": "the webhook-id, the same on every retry"},
        "destination_id": {"type": "string"}, "rule_id": nullable({"type": "string"}),
        "signal_id": nullable({"type": "string"}), "type": {"type": "string"},
        "entity_key": {"type": "string"}, "status": {"type": "string", "enum": list(STATUSES)},
        "attempts": {"type": "integer"}, "next_attempt_at": TIME, "created_at": TIME,
        "finished_at": nullable(TIME), "payload": {"type": "object"},
        "attempt_log": {"type": "array", "items": {"$ref": "#/components/schemas/AttemptOut"}}}},
}
LISTS = {"DestinationList": ("destinations", "DestinationOut"),
         "RuleList": ("alert_rules", "RuleOut"), "DeliveryList": ("deliveries", "DeliveryOut")}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def _invalid() -> dict[str, Any]:
    return _json("ErrorOut", "Invalid settings: `errors` names each field and its problem.")


def _id(name: str) -> list[dict[str, Any]]:
    return [{"in": "path", "name": name, "required": True, "schema": {"type": "string"}}]


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{name}"}}}}


def _op(summary: str, op_id: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "operationId": op_id, "tags": ["alerts"],
            "responses": {**responses, "401": "Unauthorized"}, **extra}


def add_paths(spec: APISpec) -> None:
    """Register the alert schemas and paths on `spec`."""
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, component=schema)
    for name, (key, item) in LISTS.items():
        spec.components.schema(name, component={"type": "object", "properties": {key: {
            "type": "array", "items": {"$ref": f"#/components/schemas/{item}"}}}})
    _destination_paths(spec)
    _rule_paths(spec)
    _delivery_paths(spec)


def _destination_paths(spec: APISpec) -> None:
    spec.path(path=f"{PREFIX}/destinations", operations={
        "get": _op("List destinations", "list_destinations",
                   {"200": _json("DestinationList", "Destinations, secrets masked")}),
        "post": _op("Create a destination", "create_destination",
                    {"201": _json("DestinationOut", "Created; a webhook's secret in full, once"),
                     "400": "BadRequest", "422": _invalid()}, requestBody=_body("DestinationIn")),
    })
    spec.path(path=f"{PREFIX}/destinations/{{destination_id}}", operations={
        "delete": _op("Delete a destination with its rules and deliveries", "delete_destination",
                      {"204": {"description": "Deleted"}, "404": "NotFound"},
                      parameters=_id("destination_id"))})
    spec.path(path=f"{PREFIX}/destinations/{{destination_id}}/test", operations={
        "post": _op("Send a test message now (no retries)", "test_destination",
                    {"200": _json("DeliveryOut", "The test delivery and its attempt"),
                     "404": "NotFound"}, parameters=_id("destination_id"))})
    spec.path(path=f"{PREFIX}/destinations/{{destination_id}}/rotate-secret", operations={
        "post": _op("Rotate a webhook's signing secret (the old one signs for 24 h more)",
                    "rotate_destination_secret",
                    {"200": _json("DestinationOut", "The new secret in full, once"),
                     "404": "NotFound", "422": _invalid()}, parameters=_id("destination_id"))})


def _rule_paths(spec: APISpec) -> None:
    signal = [{"in": "query", "name": "signal_id", "schema": {"type": "string"},
               "description": "Only this signal's rules."}]
    spec.path(path=f"{PREFIX}/alert-rules", operations={
        "get": _op("List alert rules", "list_alert_rules",
                   {"200": _json("RuleList", "Rules"), "400": "BadRequest"},
                   parameters=signal),
        "post": _op("Create an alert rule", "create_alert_rule",
                    {"201": _json("RuleOut", "Created"), "400": "BadRequest",
                     "422": _invalid()}, requestBody=_body("RuleIn")),
    })
    spec.path(path=f"{PREFIX}/alert-rules/{{rule_id}}", operations={
        "delete": _op("Delete an alert rule", "delete_alert_rule",
                      {"204": {"description": "Deleted"}, "404": "NotFound"},
                      parameters=_id("rule_id"))})


def _delivery_paths(spec: APISpec) -> None:
    query = [{"in": "query", "name": "status", "schema": {"type": "string",
                                                           "enum": list(STATUSES)}},
             {"in": "query", "name": "destination_id", "schema": {"type": "string"}},
             {"in": "query", "name": "limit",
              "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}}]
    spec.path(path=f"{PREFIX}/deliveries", operations={
        "get": _op("The latest deliveries with their attempts", "list_deliveries",
                   {"200": _json("DeliveryList", "Newest first"), "400": "BadRequest"},
                   parameters=query)})
    spec.path(path=f"{PREFIX}/deliveries/{{delivery_id}}/resend", operations={
        "post": _op("Queue a failed delivery again (same webhook-id)", "resend_delivery",
                    {"202": _json("DeliveryOut", "Queued"), "404": "NotFound",
                     "409": _json("ErrorOut", "Only a failed delivery can be re-sent")},
                    parameters=_id("delivery_id"))})
