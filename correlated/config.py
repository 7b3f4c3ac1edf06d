"""Every setting, its environment variable and its default. Nothing else reads os.environ."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from .database import json_dumps

# (setting, environment variable, default, parser)
SETTINGS: list[tuple[str, str, Any, type]] = [
    ("SQLALCHEMY_DATABASE_URI", "CORRELATED_DATABASE_URL", None, str),
    ("SECRET_KEY", "CORRELATED_SECRET_KEY", None, str),
    ("MAX_ROWS_PER_REQUEST", "CORRELATED_MAX_ROWS", 1000, int),
    ("MAX_CONTENT_LENGTH", "CORRELATED_MAX_BODY_BYTES", 4 * 1024 * 1024, int),
    # an event timestamp further ahead than this is refused (a clock or unit mistake); the
    # engine reads it itself, from the environment, so every surface holds the same limit
    ("MAX_FUTURE_HOURS", "CORRELATED_MAX_FUTURE_HOURS", 24.0, float),
    # custom fields per object (accounts, users, events); rows that would add more are rejected
    ("MAX_CUSTOM_FIELDS", "CORRELATED_MAX_CUSTOM_FIELDS", 200, int),
    ("REDIS_URL", "CORRELATED_REDIS_URL", None, str),
    ("RATE_LIMIT", "CORRELATED_RATE_LIMIT", "6000 per minute", str),
    ("LOGIN_RATE_LIMIT", "CORRELATED_LOGIN_RATE_LIMIT", "10 per minute", str),
    # failed sign-ins per email, from any address
    ("LOGIN_ACCOUNT_RATE_LIMIT", "CORRELATED_LOGIN_ACCOUNT_RATE_LIMIT", "20 per hour", str),
    # gunicorn workers of this server (`correlated serve` sets it): without Redis each counts
    # sign-in attempts alone, so each enforces its share of the sign-in limits
    ("SERVER_WORKERS", "CORRELATED_SERVER_WORKERS", 1, int),
    ("RATELIMIT_ENABLED", "CORRELATED_RATE_LIMIT_ENABLED", True, bool),
    ("RATELIMIT_KEY_PREFIX", "CORRELATED_RATE_LIMIT_KEY_PREFIX", "correlated", str),
    ("LOG_LEVEL", "CORRELATED_LOG_LEVEL", "INFO", str),
    ("REQUEST_LOG", "CORRELATED_REQUEST_LOG", True, bool),
    ("METRICS_TOKEN", "CORRELATED_METRICS_TOKEN", None, str),
    # prometheus_client reads this variable itself, at import; here it picks /metrics' collector
    ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROC_DIR", None, str),
    ("SESSION_COOKIE_SECURE", "CORRELATED_SECURE_COOKIES", False, bool),
    ("PUBLIC_URL", "CORRELATED_PUBLIC_URL", None, str),
    # alerts: email goes out through this SMTP server (smtp://user:pass@host:587?starttls=true)
    ("SMTP_URL", "CORRELATED_SMTP_URL", None, str),
    ("SMTP_FROM", "CORRELATED_SMTP_FROM", "correlated@localhost", str),
    ("ALLOW_PRIVATE_DESTINATIONS", "CORRELATED_ALLOW_PRIVATE_DESTINATIONS", False, bool),
    ("DELIVERY_TIMEOUT_SECONDS", "CORRELATED_DELIVERY_TIMEOUT_SECONDS", 10.0, float),
    # a claimed delivery not recorded within this is sent again (the worker died mid-send)
    ("DELIVERY_LEASE_SECONDS", "CORRELATED_DELIVERY_LEASE_SECONDS", 60.0, float),
    ("WORKER_INTERVAL", "CORRELATED_WORKER_INTERVAL", 2.0, float),  # seconds between polls
]


def _parse(raw: str, kind: type) -> Any:
    if kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return kind(raw)


def _instance_secret(instance_path: Path) -> str:
    """A secret generated on first start and kept in the instance folder, so sessions survive restarts."""
    path = instance_path / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _value(var: str, default: Any, kind: type, environ: os._Environ | dict) -> Any:
    raw = environ.get(var)
    return _parse(raw, kind) if raw not in (None, "") else default


def setting(key: str, environ: os._Environ | dict | None = None) -> Any:
    """One setting, for code that runs without an app (gunicorn's master, the ingest engine)."""
    _key, var, default, kind = next(s for s in SETTINGS if s[0] == key)
    return _value(var, default, kind, os.environ if environ is None else environ)


def load(instance_path: str, environ: os._Environ | dict | None = None) -> dict[str, Any]:
    """Read the configuration from the environment, filling defaults that depend on the instance folder."""
    environ = os.environ if environ is None else environ
    folder = Path(instance_path)
    folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {}
    for key, var, default, kind in SETTINGS:
        config[key] = _value(var, default, kind, environ)
    if not config["SQLALCHEMY_DATABASE_URI"]:
        config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{folder / 'correlated.db'}"
    if not config["SECRET_KEY"]:
        config["SECRET_KEY"] = _instance_secret(folder)
    # Rate-limit counters: shared across gunicorn workers through Redis when it is configured.
    config["RATELIMIT_STORAGE_URI"] = config["REDIS_URL"] or "memory://"
    config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
        # orjson for JSON columns: the engine has already refused NaN and oversized integers.
        # hide_parameters: a database error's message (and so its log line) shows the SQL but
        # not the values, which are customer data and were once one 6.5 MB line.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True, "json_serializer": json_dumps,
                                   "hide_parameters": True},
    )
    return config
