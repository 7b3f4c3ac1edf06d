"""Structured request logs (one JSON line per request) and Prometheus metrics at `GET /metrics`.

Under gunicorn every worker counts into its own files in PROMETHEUS_MULTIPROC_DIR and /metrics
sums them (prometheus_client's multiprocess mode), so a scrape is right whichever worker answers.
Secrets never reach a log line: query values named like keys are redacted, the Basic user
(Segment's write key) is dropped from access logs.
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import re
import sys
import time
from datetime import datetime, timezone
from typing import Any, Sequence
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter,
                               Histogram, generate_latest)
from prometheus_client.multiprocess import MultiProcessCollector

from .ingest import engine as ingest, log as ingest_log
from .errors import ApiError
from .ingest.log import REDACTED, SECRET_KEYS

log = logging.getLogger("correlated.request")
bp = Blueprint("metrics", __name__)

# A query parameter holding a secret: named like one, or named `key` or `...key` (?key=,
# ?apikey=, ?writeKey=), the spellings callers use to pass an API key in the URL.
SECRET_PARAM = re.compile(rf"{SECRET_KEYS.pattern}|key$", re.IGNORECASE)
SECRET_IN_QUERY = re.compile(
    rf"((?:^|[?&])(?:[^=&\s?]*{SECRET_KEYS.pattern}[^=&\s]*|[^=&\s?]*key)=)[^&\s\"']*",
    re.IGNORECASE)
MAX_LOG_TEXT = 16_000  # characters of a message or traceback in one log line
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter("correlated_http_requests", "HTTP requests answered",
                   ("blueprint", "endpoint", "method", "status"))
REQUEST_SECONDS = Histogram("correlated_http_request_duration_seconds",
                            "Time to answer an HTTP request", ("blueprint",))
ROWS = Counter("correlated_ingest_rows", "Rows received, by protocol, object and outcome "
               "(accepted or rejected), as in the ingest log", ("protocol", "object", "outcome"))
INGEST_SECONDS = Histogram("correlated_ingest_duration_seconds", "Ingestion engine time per "
                           "unit of work: validate, write, commit", ("protocol",))
INGEST_ERRORS = Counter("correlated_ingest_errors", "Units of work rolled back by a database "
                        "error (nothing stored; the sender must retry)", ("protocol",))


def init_app(app: Flask) -> None:
    """Logging, redaction, request hooks, engine hooks and /metrics; call first in create_app."""
    configure_logging(app.config["LOG_LEVEL"])
    install_redaction()
    app.before_request(_start_clock)
    app.after_request(_record)  # registered first, so it runs last and sees the final response
    app.register_blueprint(bp)
    if count_rows not in ingest_log.WRITE_HOOKS:
        ingest_log.WRITE_HOOKS.append(count_rows)
    if time_ingest not in ingest.RESULT_HOOKS:
        ingest.RESULT_HOOKS.append(time_ingest)


# --- logs -----------------------------------------------------------------------------------

class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, then the record's fields or message."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(), "logger": record.name}
        entry.update(getattr(record, "fields", None) or {"message": cap(record.getMessage())})
        if record.exc_info:
            entry["exception"] = cap(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def cap(text: str, limit: int = MAX_LOG_TEXT) -> str:
    """At most `limit` characters: the start and the end (a traceback's last line names the
    error), the middle cut with a count."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} …[{len(text) - 2 * half:,} characters cut]… {text[-half:]}"


def configure_logging(level: str) -> None:
    """JSON lines on stderr for the `correlated` loggers, unless logging is already set up."""
    package = logging.getLogger("correlated")
    package.setLevel(level.upper())
    # Someone (pytest, an operator's dictConfig) already routes records: leave it to them.
    if not package.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        package.addHandler(handler)
        # Our lines are JSON only: a root handler added later (alembic's logging config during
        # `serve`'s upgrade) would print each of them a second time as text.
        package.propagate = False


def redact_query(text: str) -> str:
    """`a=1&token=cor_x` -> `a=1&token=[redacted]` (also inside a request line)."""
    return SECRET_IN_QUERY.sub(rf"\1{REDACTED}", text)


class RedactSecrets(logging.Filter):
    """Scrubs keys from werkzeug's and gunicorn's request lines, whatever their format."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):  # gunicorn's access atoms, edited in place
            _redact_atoms(record.args)
        return True


def _redact_atoms(atoms: dict) -> None:
    for name in list(atoms):
        if name in ("r", "q") and isinstance(atoms[name], str):
            atoms[name] = redact_query(atoms[name])
        elif name == "u" or (name.startswith("{") and SECRET_KEYS.search(name)):
            atoms[name] = "-"  # the Basic user is an API key for Segment's SDKs


def install_redaction() -> None:
    for name in ("werkzeug", "gunicorn.access", "gunicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


def _start_clock() -> None:
    g.request_started = time.perf_counter()


def _record(response: Response) -> Response:
    """Count the request and write its log line."""
    seconds = time.perf_counter() - g.get("request_started", time.perf_counter())
    blueprint = request.blueprint or "app"
    endpoint = request.url_rule.endpoint if request.url_rule else "unmatched"
    method = request.method if request.method in METHODS else "other"  # bounded label values
    REQUESTS.labels(blueprint, endpoint, method, str(response.status_code)).inc()
    REQUEST_SECONDS.labels(blueprint).observe(seconds)
    if current_app.config["REQUEST_LOG"]:
        log_request(response.status_code, seconds, blueprint, endpoint)
    return response


def log_request(status: int, seconds: float, protocol: str, endpoint: str) -> None:
    fields = {
        "event": "request", "method": request.method, "path": request.path,
        "query": safe_query(), "status": status, "duration_ms": round(seconds * 1000, 2),
        "workspace_id": _workspace_id(), "protocol": protocol, "endpoint": endpoint,
        "remote": request.remote_addr, "pid": os.getpid(),
    }
    level = logging.ERROR if status >= 500 else logging.INFO
    log.log(level, "%s %s %s %.1fms", request.method, request.path, status, seconds * 1000,
            extra={"fields": fields})


def safe_query() -> str | None:
    """The query string with the values of secret-looking parameters replaced."""
    if not request.args:
        return None
    return urlencode([(k, REDACTED if SECRET_PARAM.search(k) else v)
                      for k, v in request.args.items(multi=True)])


def _workspace_id() -> int | None:
    """The caller's workspace if this request already knows it (never loads a user for it)."""
    principal = g.get("principal")
    if principal is not None:
        return principal.workspace_id
    member = getattr(g.get("_login_user"), "member", None)  # set by Flask-Login when it loaded one
    return member.workspace_id if member is not None else None


# --- metrics --------------------------------------------------------------------------------

def count_rows(protocol: str, outcome: ingest.Outcome) -> None:
    """Ingest-log hook: rows per outcome, including those an adapter refused before the engine
    (rows it could not tell the object of count as "unknown")."""
    for result in outcome.results:
        ROWS.labels(protocol, result.object, "accepted").inc(result.accepted)
        ROWS.labels(protocol, result.object, "rejected").inc(len(result.rejected))
    unknown = len(outcome.rejected) - sum(len(r.rejected) for r in outcome.results)
    if unknown:
        ROWS.labels(protocol, "unknown", "rejected").inc(unknown)


def time_ingest(protocol: str | None, results: Sequence[ingest.Result], seconds: float) -> None:
    """Engine hook: how long a request's unit of work took, and whether the database refused it."""
    if protocol is None:
        return  # not a request (demo data, benchmarks)
    INGEST_SECONDS.labels(protocol).observe(seconds)
    if any(result.error for result in results):
        INGEST_ERRORS.labels(protocol).inc()


def registry() -> CollectorRegistry:
    """Every worker's metrics in multiprocess mode, else this process's own."""
    folder = current_app.config["PROMETHEUS_MULTIPROC_DIR"]
    if not folder:
        return REGISTRY
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=folder)
    return merged


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format; behind `Authorization: Bearer <METRICS_TOKEN>` when one is set."""
    token = current_app.config["METRICS_TOKEN"]
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            raise ApiError(401, "metrics: send 'Authorization: Bearer <CORRELATED_METRICS_TOKEN>'")
    return Response(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
