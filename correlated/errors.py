"""One error shape per audience: JSON for machine surfaces, HTML pages for people."""
from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

# Paths whose callers are programs: they get JSON errors, never HTML.
MACHINE_PREFIXES = ("/api/", "/hightouch/", "/census/", "/webhooks/", "/v1/", "/healthz", "/metrics")


class ApiError(Exception):
    """An error a machine caller can act on: a status code and a message naming the problem."""

    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] = {}

    def to_response(self) -> Response:
        response = jsonify({"error": self.message, **self.extra})
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


class InvalidInput(ValueError):
    """A service refusing what it was asked; each protocol answers it in its own shape.

    `detail` names the field and the problem; `data` carries more for the caller (a list of
    every problem found, say)."""

    def __init__(self, detail: str, **data: Any):
        super().__init__(detail)
        self.detail = detail
        self.data = data


def is_machine_request() -> bool:
    return request.path.startswith(MACHINE_PREFIXES)


def describe_http_error(error: HTTPException) -> str:
    if error.code == 413:
        limit = request.max_content_length
        return f"request body too large: the limit is {limit:,} bytes" if limit else "request too large"
    return error.description or error.name


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError):
        return error.to_response()

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):
        if error.response is not None:  # a page of its own (the sign-in lockout)
            return error.response
        if is_machine_request():
            response = jsonify({"error": describe_http_error(error)})
            response.status_code = error.code or 500
            if error.code == 405 and error.valid_methods:
                response.headers["Allow"] = ", ".join(error.valid_methods)
            return response
        return render_template("error.html", error=error), error.code
