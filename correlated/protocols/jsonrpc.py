"""JSON-RPC 2.0 over HTTP POST, answered the way a jayson server answers; Hightouch and Census.

Results and JSON-RPC errors travel with HTTP 200; a body that is not JSON is a parse error with
HTTP 400; notifications (and batches of them) get 204 and no body. Wrong method (405), content
type (415), size (413) and key (401) stay plain HTTP errors, raised before any method runs.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from flask import Response, current_app, g, jsonify

from ..errors import ApiError, InvalidInput
from .body import json_body

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
MESSAGES = {PARSE_ERROR: "Parse Error", INVALID_REQUEST: "Invalid Request",
            METHOD_NOT_FOUND: "Method Not Found", INVALID_PARAMS: "Invalid Params",
            INTERNAL_ERROR: "Internal Error"}
NO_ID = object()  # a notification: no "id" member at all


class RpcError(Exception):
    """A JSON-RPC error: the standard code, its message with the problem named, optional data."""

    def __init__(self, code: int, detail: str | None = None, data: Any = None):
        name = MESSAGES.get(code, "Server Error")
        # Sync tools show `message` to the person fixing the sync: name the problem there too.
        self.message = f"{name}: {detail}" if detail else name
        super().__init__(self.message)
        self.code = code
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        error = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid_params(detail: str, **data: Any) -> RpcError:
    return RpcError(INVALID_PARAMS, detail, data or detail)


def translate(exc: RpcError | InvalidInput) -> RpcError:
    """A service's refusal as JSON-RPC's Invalid Params (an RpcError stays as it is)."""
    return exc if isinstance(exc, RpcError) else invalid_params(exc.detail, **exc.data)


class Dispatcher:
    """A table of methods, each called as `method(context, **params)`; `recover` runs after a
    method failed unexpectedly (the adapter rolls its session back for the next call)."""

    def __init__(self, recover: Callable[[], None] | None = None) -> None:
        self.methods: dict[str, Callable[..., Any]] = {}
        self.recover = recover

    def method(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Register `func` under its own name."""
        self.methods[func.__name__] = func
        return func

    def respond(self, context: Any) -> Response:
        """Answer the current request's body (one call or a batch)."""
        try:
            body = json_body(require_content_type=True)
        except ApiError as exc:
            if exc.status != 400:
                raise  # 413, 415: plain HTTP errors
            return _reply(error_response(RpcError(PARSE_ERROR, data=exc.message), None), 400)
        answer = self.answer(body, context)
        return Response(status=204) if answer is None else _reply(answer, 200)

    def answer(self, body: Any, context: Any) -> Any:
        """The response object or array for `body`, or None when nothing is to be sent back."""
        if isinstance(body, list):
            if not body:
                return error_response(RpcError(INVALID_REQUEST, data="empty batch"), None)
            answers = [self.answer_one(item, context) for item in body]
            answers = [a for a in answers if a is not None]
            return answers or None
        return self.answer_one(body, context)

    def answer_one(self, request: Any, context: Any) -> dict[str, Any] | None:
        try:
            method, params, request_id = parse_request(request)
        except RpcError as exc:
            return error_response(exc, _usable_id(request))
        try:
            result = self.call(method, params, context)
        except RpcError as exc:
            return None if request_id is NO_ID else error_response(exc, request_id)
        if request_id is NO_ID:
            return None
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    def call(self, name: str, params: dict | list, context: Any) -> Any:
        func = self.methods.get(name)
        if func is None:
            raise RpcError(METHOD_NOT_FOUND, f"no method {name[:64]!r}", name[:64])
        args, kwargs = bind(func, params, context)
        try:
            return func(*args, **kwargs)
        except (RpcError, InvalidInput) as exc:
            raise translate(exc) from None
        except Exception as exc:  # a bug or an outage: the caller retries; the log keeps the trace
            if self.recover is not None:
                self.recover()
            current_app.logger.exception("JSON-RPC method %s failed", name)
            raise RpcError(INTERNAL_ERROR, data=type(exc).__name__) from exc


def parse_request(request: Any) -> tuple[str, dict | list, Any]:
    """(method, params, id) of one request object, or an Invalid Request error."""
    if not isinstance(request, dict):
        raise RpcError(INVALID_REQUEST, data="expected a JSON-RPC request object")
    if request.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, data='"jsonrpc" must be "2.0"')
    method = request.get("method")
    if not isinstance(method, str) or not method:
        raise RpcError(INVALID_REQUEST, data='"method" must be a non-empty string')
    params = request.get("params", {})
    if not isinstance(params, (dict, list)):
        raise RpcError(INVALID_REQUEST, data='"params" must be an object or an array')
    request_id = request.get("id", NO_ID)
    if request_id is not NO_ID and not _valid_id(request_id):
        raise RpcError(INVALID_REQUEST, data='"id" must be a string, a number or null')
    return method, params, request_id


def bind(func: Callable[..., Any], params: dict | list, context: Any) -> tuple[list, dict]:
    """Arguments for `func`; named params it does not take are ignored (sync tools add keys)."""
    signature = inspect.signature(func)
    if isinstance(params, dict):
        accepted = list(signature.parameters)[1:]
        kwargs = {k: v for k, v in params.items() if k in accepted}
        args: list = [context]
    else:
        kwargs, args = {}, [context, *params]
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise RpcError(INVALID_PARAMS, str(exc), str(exc)) from None
    return args, kwargs


def error_response(error: RpcError, request_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_dict()}


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))


def _usable_id(request: Any) -> Any:
    value = request.get("id") if isinstance(request, dict) else None
    return value if _valid_id(value) else None


def _reply(payload: Any, status: int) -> Response:
    response = jsonify(payload)
    response.status_code = status
    return response


# --- parameter checks shared by the adapters --------------------------------------------------

def database_fault(error: str) -> RpcError:
    """The batch was rolled back: an Internal Error makes the sync tool send it again."""
    return RpcError(INTERNAL_ERROR, "database error: nothing in this batch was stored; "
                    "send it again", data=error)


def expect_array(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid_params(f"{name}: expected an array")
    return value


def check_rows(rows: Any, name: str = "rows") -> list[Any]:
    """An array of rows within the row limit, which holds per HTTP request: the calls of one
    JSON-RPC batch share it (each call counted as it runs; one past the limit is refused)."""
    rows = expect_array(rows, name)
    limit = current_app.config["MAX_ROWS_PER_REQUEST"]
    if len(rows) > limit:
        raise invalid_params(f"{name}: {len(rows):,} in one call; the limit is {limit:,}; "
                             "lower the batch size")
    used = g.get("rpc_rows", 0)
    if used + len(rows) > limit:
        raise invalid_params(f"{name}: {len(rows):,} more would make {used + len(rows):,} in "
                             f"one HTTP request (a JSON-RPC batch); the limit is {limit:,} rows "
                             "per request; send the calls in separate requests")
    g.rpc_rows = used + len(rows)
    return rows
