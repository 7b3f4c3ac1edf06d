"""Marshmallow schemas of the REST API: what each object accepts, what we emit, and the query
parameters; the OpenAPI 3 document is generated from them (`openapi()`).

The input schemas document the canonical row shape; the ingestion engine does the validating
(aliases, `__` nesting, custom fields, per-row rejections), so rules live in one place.
"""
from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import Any, Callable

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import EXCLUDE, INCLUDE, Schema, ValidationError, fields, validate

from ..ingest import fields as catalog
from ..ingest.engine import check_json
from ..vocabulary import EVENT_NAME_MAX, OPERATIONS, TEXT_MAX

API_PREFIX = "/api/v1"
API_VERSION = "1.0.0"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


# --- custom fields --------------------------------------------------------------------------

class UTCDateTime(fields.DateTime):
    """An ISO 8601 timestamp in UTC (SQLite hands back naive datetimes, which are UTC)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return super()._serialize(value, attr, obj, **kwargs)


class Timestamp(fields.Field):
    """A query-string time: ISO 8601 (naive means UTC), a date, or epoch seconds/milliseconds."""

    SHAPE = [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"},
             {"type": "number"}]

    def __init__(self, description: str, **kwargs: Any):
        super().__init__(metadata={"description": description, "anyOf": self.SHAPE}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        try:
            return catalog.parse_timestamp(value)
        except catalog.Invalid as exc:
            raise ValidationError(str(exc)) from None


def identifier(description: str, allow_none: bool = False, **kwargs: Any) -> fields.Raw:
    """An ID as the engine takes it: a string or an integer."""
    shape: list[dict[str, Any]] = [
        {"type": "string", "minLength": 1, "maxLength": catalog.ID_MAX}, {"type": "integer"}]
    if allow_none:  # OpenAPI 3.0 has no null type: each alternative says it may be null (anyOf)
        shape = [{**alternative, "nullable": True} for alternative in shape]
    return fields.Raw(metadata={"description": description, "anyOf": shape},
                      allow_none=allow_none, **kwargs)


def storable(value: str) -> None:
    """No NUL, no lone surrogate: neither database keeps one in a text column."""
    problem = check_json(value)
    if problem:
        raise ValidationError(problem)


def text(description: str, **kwargs: Any) -> fields.String:
    return fields.String(metadata={"description": description}, **kwargs)


# --- what each object accepts ---------------------------------------------------------------

class AccountIn(Schema):
    """An account row; every other column is a dimension (a new one becomes a custom field)."""

    class Meta:
        unknown = INCLUDE

    account_id = identifier("Your ID of the account (aliases: group_id, company_id, org_id, ...).",
                            required=True)
    name = text("Company name (aliases: company_name, company, account_name, ...). Required to "
                "create; optional with mode=update.", required=True,
                validate=validate.Length(max=TEXT_MAX))


class UserIn(Schema):
    """A user row; every other column is a dimension."""

    class Meta:
        unknown = INCLUDE

    user_id = identifier("Your ID of the user (aliases: userid, external_id).", required=True)
    email = fields.Email(required=True, metadata={
        "description": "A valid email address (aliases: email_address, user_email)."})
    account_id = identifier("The account the user belongs to (recommended).", allow_none=True)


class EventIn(Schema):
    """An event row; every other column is a property of the event."""

    class Meta:
        unknown = INCLUDE

    event = text("Event name (aliases: event_name, event_type, action).", required=True,
                 validate=validate.Length(min=1, max=EVENT_NAME_MAX))
    timestamp = fields.Raw(required=True, metadata={
        "description": "ISO 8601 (naive means UTC), a warehouse rendering (docs/ingest.md) or "
                       "epoch seconds/milliseconds, at most CORRELATED_MAX_FUTURE_HOURS ahead "
                       "(aliases: time, ts, occurred_at, ...).",
        "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]})
    user_id = identifier("Who did it (required unless the event is removed).", required=True)
    account_id = identifier("The account; when absent the user's account is used.",
                            allow_none=True)
    event_id = identifier("De-duplication key: an event_id sent again is stored once. When absent "
                          "a content hash is used.", allow_none=True)


# --- what we emit ---------------------------------------------------------------------------

class RecordTimes(Schema):
    created_at = UTCDateTime(metadata={"description": "When correlated first stored the record."})
    updated_at = UTCDateTime(metadata={
        "description": "When a sync last changed the record; on the account and user lists, "
                       "also when its metrics, signals (or scores) last changed."})
    archived_at = UTCDateTime(allow_none=True, metadata={
        "description": "When the record was removed (archived); null while it is live."})


class AccountOut(RecordTimes):
    account_id = fields.String()
    name = fields.String()
    dimensions = fields.Dict(attribute="traits", metadata={
        "description": "Every other field of the account, keyed as in the field catalog."})


class MetricsOut(Schema):
    users = fields.Integer(metadata={"description": "Live users of the account."})
    active_users_7d = fields.Integer(metadata={"description": "Users with events, last 7 days."})
    active_users_30d = fields.Integer(metadata={"description": "Users with events, last 30 days."})
    events_30d = fields.Integer(metadata={"description": "Events in the last 30 days."})
    events_prev_30d = fields.Integer(metadata={"description": "Events in the 30 days before that."})
    last_seen = fields.String(allow_none=True, metadata={
        "format": "date-time", "description": "Time of the account's latest event."})


SIGNALS_OF_RECORD = {"description": "On GET of one record: the signals it is in now "
                                    "(id, name, category, entered_at, already_in, values)."}


SCORES_OF_RECORD = {"description": "On GET of one record: its scores (id, name, score, tier, "
                                   "computed_at, contributions: per input label, group, weight, "
                                   "value, points and missing; the points add up to the score)."}


class AccountDetail(AccountOut):
    metrics = fields.Nested(MetricsOut)
    signals = fields.List(fields.Dict(), metadata=SIGNALS_OF_RECORD)
    scores = fields.List(fields.Dict(), metadata=SCORES_OF_RECORD)


class UserOut(RecordTimes):
    user_id = fields.String()
    email = fields.String(allow_none=True)
    account_id = fields.String(allow_none=True)
    dimensions = fields.Dict(attribute="traits", metadata={
        "description": "Every other field of the user, keyed as in the field catalog."})
    signals = fields.List(fields.Dict(), metadata=SIGNALS_OF_RECORD)
    scores = fields.List(fields.Dict(), metadata=SCORES_OF_RECORD)


class EventOut(Schema):
    event_id = fields.String()
    event = fields.String()
    user_id = fields.String(allow_none=True)
    account_id = fields.String(allow_none=True)
    timestamp = UTCDateTime()
    received_at = UTCDateTime()
    properties = fields.Dict()


INCLUDED = {
    "metrics": "With include=metrics: the current metrics (active users or days, events in the "
               "last 30 days and the 30 before, last seen).",
    "signals": "With include=signals: the signals it is in now (id, name, category, "
               "entered_at).",
}


class AccountListed(AccountOut):
    metrics = fields.Dict(metadata={"description": INCLUDED["metrics"]})
    signals = fields.List(fields.Dict(), metadata={"description": INCLUDED["signals"]})


class UserListed(UserOut):
    metrics = fields.Dict(metadata={"description": INCLUDED["metrics"]})
    signals = fields.List(fields.Dict(), metadata={"description": INCLUDED["signals"]})


class EventPage(Schema):
    data = fields.List(fields.Nested(EventOut))
    next_cursor = fields.String(allow_none=True, metadata={
        "description": "Pass as ?cursor= for the next page; null on the last page."})


class AccountPage(EventPage):
    data = fields.List(fields.Nested(AccountListed))
    next_updated_since = fields.String(metadata={
        "format": "date-time",
        "description": "Pass as ?updated_since= on the next incremental pull: a few minutes "
                       "before this pull's first page, so no change in flight is missed (a "
                       "record may come twice)."})


class UserPage(AccountPage):
    data = fields.List(fields.Nested(UserListed))


class RejectionOut(Schema):
    index = fields.Integer(metadata={"description": "Position of the row in the request (from 0)."})
    id = fields.String(allow_none=True, metadata={"description": "The row's ID, when it had one."})
    reason = fields.String(metadata={"description": "What to fix, e.g. \"email: not a valid "
                                                    "email address: 'x'\"."})


class WriteResult(Schema):
    object = fields.String()
    operation = fields.String()
    received = fields.Integer(metadata={"description": "Rows in the request."})
    accepted = fields.Integer(metadata={"description": "Valid rows (stored, merged, duplicate)."})
    created = fields.Integer()
    updated = fields.Integer()
    removed = fields.Integer()
    duplicates = fields.Integer(metadata={
        "description": "Events whose event_id was already stored (stored once)."})
    rejected = fields.List(fields.Nested(RejectionOut))
    error = fields.String(metadata={
        "description": "Only on 503: the database error that rolled the whole request back."})


class FieldOut(Schema):
    object = fields.String(validate=validate.OneOf(catalog.CORE))
    key = fields.String()
    label = fields.String()
    type = fields.String(validate=validate.OneOf(catalog.TYPES))
    default = fields.Boolean(attribute="is_default", metadata={
        "description": "True for core and default fields, false for custom ones."})
    format = fields.String(attribute="display_format", allow_none=True, metadata={
        "description": "How dashboards show values: number, percent, currency:<ISO code>; "
                       "null shows them as sent."})
    hidden = fields.Boolean(metadata={
        "description": "Hidden by an admin: values are still stored and returned, but the "
                       "field is left out of dashboards' pickers, CSV exports and syncs' field "
                       "lists."})


class FieldList(Schema):
    data = fields.List(fields.Nested(FieldOut))


def _key_shape(key: str) -> None:
    """Rules the OpenAPI pattern leaves out (JSON Schema regexes have no lookahead everywhere);
    the catalog's rule, shared with the dashboard."""
    problem = catalog.key_problem(key)
    if problem:
        raise ValidationError(problem)


def _display_format(value: str) -> None:
    problem = catalog.format_problem(value)
    if problem:
        raise ValidationError(problem)


class FieldIn(Schema):
    class Meta:
        unknown = EXCLUDE

    object = fields.String(validate=validate.OneOf(catalog.CORE), metadata={
        "description": "account, user or event; may be given as ?object= instead."})
    key = fields.String(required=True, validate=[
        validate.Length(min=1, max=catalog.KEY_MAX), storable,
        validate.Regexp(r"^[^\x00-\x1f]*$", error="must not contain control characters"),
        _key_shape,
    ], metadata={"description": "The column name syncs will use; no '__' (that nests)."})
    label = fields.String(validate=[validate.Length(min=1, max=128), storable], metadata={
        "description": "Shown in the dashboard; derived from the key when absent."})
    type = fields.String(required=True, validate=validate.OneOf(catalog.TYPES))
    format = fields.String(allow_none=True, validate=_display_format, metadata={
        "description": "number, percent or currency:<ISO code> (e.g. currency:USD)."})


class FieldChange(Schema):
    hidden = fields.Boolean(required=True, metadata={
        "description": "Hide (true) or show (false) the field."})


class FieldDeleted(Schema):
    object = fields.String()
    key = fields.String()
    values_removed = fields.Integer(metadata={
        "description": "Records whose value of the field was removed."})


class ErrorOut(Schema):
    class Meta:
        unknown = INCLUDE  # an error may carry more detail than these keys

    error = fields.String(metadata={"description": "What went wrong, naming the limit or field."})
    details = fields.Dict(data_key="fields", metadata={
        "description": "Per-parameter messages, when a parameter or body field is invalid."})


# --- query parameters -----------------------------------------------------------------------

class WriteQuery(Schema):
    mode = fields.String(validate=validate.OneOf(OPERATIONS["account"]), metadata={
        "description": "upsert (default): insert or merge; update: only existing records; "
                       "remove: archive the rows' IDs."})


class EventWriteQuery(Schema):
    mode = fields.String(validate=validate.OneOf(OPERATIONS["event"]), metadata={
        "description": "insert (default; a repeated event_id is stored once) or remove (delete by "
                       "event_id)."})


class ListQuery(Schema):
    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1), metadata={
        "description": f"Page size (default {DEFAULT_LIMIT}; larger values are capped at "
                       f"{MAX_LIMIT})."})
    cursor = fields.String(
        validate=validate.Regexp(r"^[A-Za-z0-9_-]*$", error="not a next_cursor of this list"),
        metadata={"description": "next_cursor of the previous page (absent or empty: the "
                                 "first page)."})
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]), metadata={
        "description": "csv: every matching row (filters apply; limit and cursor do not), "
                       "dimensions flattened into columns."})


class ProfileListQuery(ListQuery):
    updated_since = Timestamp("Only records changed at or after this time (ISO 8601 or epoch): "
                              "by a sync, or in their metrics, signals or scores.")
    include = fields.String(
        validate=validate.Regexp(r"^[a-z_, ]*$", error="comma-separated include names"),
        metadata={"description": "Comma-separated blocks to add to each record: metrics, "
                                 "signals (and scores where scores are enabled). In CSV: "
                                 "`metrics.<name>` columns, and a `signals.<name>` column per "
                                 "signal holding when the record entered it (empty: not in it)."})
    include_archived = fields.Boolean(load_default=False, metadata={
        "description": "Also list removed (archived) records."})


class AccountListQuery(ProfileListQuery):
    pass


def filter_text(description: str) -> fields.String:
    """A filter value: an ID or name as stored (the databases store no NUL characters)."""
    return fields.String(validate=validate.Regexp(r"^[^\x00]*$", error="must not contain NUL"),
                         metadata={"description": description})


class UserListQuery(ProfileListQuery):
    account_id = filter_text("Only users of this account.")


class EventListQuery(ListQuery):
    account_id = filter_text("Only events of this account.")
    user_id = filter_text("Only events of this user.")
    event = filter_text("Only events with this name.")
    since = Timestamp("Events at or after this time (inclusive).")
    until = Timestamp("Events before this time (exclusive).")


class OneQuery(Schema):
    include_archived = fields.Boolean(load_default=False, metadata={
        "description": "Also find a removed (archived) record."})


class FieldQuery(Schema):
    object = fields.String(validate=validate.OneOf(catalog.CORE), metadata={
        "description": "account, user or event (all objects when absent on GET)."})


LIST_QUERIES = {"account": AccountListQuery, "user": UserListQuery, "event": EventListQuery}
WRITE_QUERIES = {"account": WriteQuery, "user": WriteQuery, "event": EventWriteQuery}
OUTPUTS = {"account": AccountOut, "user": UserOut, "event": EventOut}


# --- the OpenAPI document -------------------------------------------------------------------

COLLECTIONS = {  # collection -> (object, ID field, input, output, page)
    "accounts": ("account", "account_id", AccountIn, AccountOut, AccountPage),
    "users": ("user", "user_id", UserIn, UserOut, UserPage),
    "events": ("event", "event_id", EventIn, EventOut, EventPage),
}
# Nested schemas first: apispec registers a nested schema itself when it meets it unnamed.
SCHEMAS = [AccountIn, UserIn, EventIn, AccountOut, MetricsOut, AccountDetail, UserOut, EventOut,
           AccountListed, UserListed, AccountPage, UserPage, EventPage, RejectionOut, WriteResult,
           FieldOut, FieldList,
           FieldIn, FieldChange, FieldDeleted, ErrorOut]
RESPONSES = {
    "BadRequest": "The request is malformed: not JSON, an invalid parameter or mode.",
    "Unauthorized": "Missing, invalid or revoked API key.",
    "NotFound": "No such record in this workspace.",
    "TooLarge": "More rows or bytes than the limits (1,000 rows, 4 MiB by default).",
    "TooManyRequests": "The key's rate limit is spent (CORRELATED_RATE_LIMIT, 6,000 requests a "
                       "minute by default): wait the seconds in Retry-After.",
}


# Feature packages (signals, ...) append a function adding their paths to the document.
EXTRA_PATHS: list[Callable[[APISpec], None]] = []


def json_content(schema: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


@functools.lru_cache(maxsize=1)
def openapi() -> dict[str, Any]:
    """The OpenAPI 3 document of the REST API, generated from the schemas above."""
    spec = APISpec(
        title="correlated REST API", version=API_VERSION, openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Send accounts, users and events; read them back. Authenticate "
                             "with an API key as `Authorization: Bearer <key>` (or in HTTP Basic: "
                             "as the user name, or as the password with any user name)."},
        security=[{"bearer": []}, {"basic": []}],
    )
    _components(spec)
    for collection, (obj, id_field, row_in, row_out, page) in COLLECTIONS.items():
        _collection_paths(spec, collection, obj, row_in, page)
        _record_paths(spec, collection, obj, id_field, row_out)
    _field_paths(spec)
    for add_paths in EXTRA_PATHS:  # feature packages document their own operations
        add_paths(spec)
    spec.path(path=f"{API_PREFIX}/openapi.json", operations={"get": {
        "summary": "This OpenAPI document", "operationId": "openapi", "security": [],
        "responses": {"200": {"description": "OpenAPI 3 document",
                              "content": json_content({"type": "object"})}}}})
    document = spec.to_dict()
    for operations in document["paths"].values():  # every API request counts against the limit
        for operation in operations.values():
            operation["responses"]["429"] = {"$ref": "#/components/responses/TooManyRequests"}
    return document


def _components(spec: APISpec) -> None:
    spec.components.security_scheme("bearer", {
        "type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"})
    spec.components.security_scheme("basic", {
        "type": "http", "scheme": "basic",
        "description": "The API key as user name (empty password), or as password "
                       "with any user name."})
    for schema in SCHEMAS:
        spec.components.schema(schema.__name__, schema=schema)
    for name, description in RESPONSES.items():
        spec.components.response(name, {"description": description,
                                        "content": json_content("ErrorOut")})


def _write_body(obj: str, row_in: type[Schema]) -> dict[str, Any]:
    array = {"type": "array", "items": row_in, "maxItems": MAX_LIMIT}
    batch = {"type": "object", "required": ["batch"], "properties": {"batch": array}}
    return {"required": True,
            "description": f"One {obj}, an array of them or {{\"batch\": [...]}}; "
                           "`Content-Encoding: gzip` is accepted.",
            "content": json_content({"anyOf": [row_in, array, batch]})}


def _collection_paths(spec: APISpec, collection: str, obj: str, row_in: type[Schema],
                      page: type[Schema]) -> None:
    written = {"description": "Counts and the rejected rows with reasons.",
               "content": json_content("WriteResult")}
    spec.path(path=f"{API_PREFIX}/{collection}", operations={
        "post": {
            "summary": f"Write {collection}", "operationId": f"write_{collection}",
            "parameters": [{"in": "query", "schema": WRITE_QUERIES[obj]}],
            "requestBody": _write_body(obj, row_in),
            "responses": {"200": written, "400": "BadRequest", "401": "Unauthorized",
                          "413": "TooLarge",
                          "422": {**written, "description": "Every row was rejected."},
                          "503": {**written, "description": "A database error: nothing stored."}},
        },
        "get": {
            "summary": f"List {collection}", "operationId": f"list_{collection}",
            "parameters": [{"in": "query", "schema": LIST_QUERIES[obj]}],
            "responses": {"200": {"description": "A page (JSON) or every matching row (CSV).",
                                  "content": {**json_content(page),
                                              "text/csv": {"schema": {"type": "string"}}}},
                          "400": "BadRequest", "401": "Unauthorized"},
        },
    })


def _record_paths(spec: APISpec, collection: str, obj: str, id_field: str,
                  row_out: type[Schema]) -> None:
    key = {"in": "path", "name": id_field, "required": True, "schema": {"type": "string"}}
    found = AccountDetail if obj == "account" else row_out
    spec.path(path=f"{API_PREFIX}/{collection}/{{{id_field}}}", operations={
        "get": {
            "summary": f"One {obj}" + (" with its metrics" if obj == "account" else ""),
            "operationId": f"get_{obj}",
            "parameters": [key, {"in": "query", "schema": OneQuery}],
            "responses": {"200": {"description": f"The {obj}", "content": json_content(found)},
                          "400": "BadRequest", "401": "Unauthorized", "404": "NotFound"},
        },
        "delete": {
            "summary": "Delete the event" if obj == "event" else f"Archive the {obj}",
            "operationId": f"delete_{obj}",
            "parameters": [key],
            "responses": {"200": {"description": "Removed", "content": json_content("WriteResult")},
                          "401": "Unauthorized", "404": "NotFound",
                          "503": {"description": "A database error: nothing removed.",
                                  "content": json_content("WriteResult")}},
        },
    })


def _field_paths(spec: APISpec) -> None:
    def query() -> list[dict]:  # apispec consumes parameter dicts, so each operation gets its own
        return [{"in": "query", "schema": FieldQuery}]

    spec.path(path=f"{API_PREFIX}/fields", operations={
        "get": {
            "summary": "The field catalog", "operationId": "list_fields", "parameters": query(),
            "responses": {"200": {"description": "Fields", "content": json_content("FieldList")},
                          "400": "BadRequest", "401": "Unauthorized"},
        },
        "post": {
            "summary": "Create a custom field", "operationId": "create_field",
            "parameters": query(),
            "requestBody": {"required": True, "content": json_content("FieldIn")},
            "responses": {"201": {"description": "Created", "content": json_content("FieldOut")},
                          "400": "BadRequest", "401": "Unauthorized",
                          "409": {"description": "A field with this key exists (or the key is a "
                                                 "core field's alias), or the object has the "
                                                 "maximum of custom fields "
                                                 "(CORRELATED_MAX_CUSTOM_FIELDS, 200 by "
                                                 "default).",
                                  "content": json_content("ErrorOut")},
                          "413": "TooLarge",
                          "422": {"description": "Invalid field definition.",
                                  "content": json_content("ErrorOut")}},
        },
    })
    _custom_field_paths(spec)


def _custom_field_paths(spec: APISpec) -> None:
    def params() -> list[dict]:
        return [{"in": "path", "name": "object", "required": True,
                 "schema": {"type": "string", "enum": list(catalog.CORE)}},
                {"in": "path", "name": "key", "required": True, "schema": {"type": "string"},
                 "description": "The field's key as the catalog spells it."}]

    not_custom = {"description": "A core or default field: only custom fields change so.",
                  "content": json_content("ErrorOut")}
    spec.path(path=f"{API_PREFIX}/fields/{{object}}/{{key}}", operations={
        "patch": {
            "summary": "Hide or show a custom field", "operationId": "change_field",
            "parameters": params(),
            "requestBody": {"required": True, "content": json_content("FieldChange")},
            "responses": {"200": {"description": "Changed", "content": json_content("FieldOut")},
                          "400": "BadRequest", "401": "Unauthorized", "404": "NotFound",
                          "409": not_custom, "413": "TooLarge",
                          "422": {"description": "Invalid change.",
                                  "content": json_content("ErrorOut")}},
        },
        "delete": {
            "summary": "Delete a custom field and its values", "operationId": "delete_field",
            "parameters": params(),
            "responses": {"200": {"description": "Deleted",
                                  "content": json_content("FieldDeleted")},
                          "401": "Unauthorized", "404": "NotFound", "409": not_custom},
        },
    })
