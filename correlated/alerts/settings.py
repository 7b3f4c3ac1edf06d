"""The alert settings, read from the app's configuration (services take them as an argument)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class AlertSettings:
    base_url: str = DEFAULT_BASE_URL
    allow_private: bool = False
    smtp_url: str | None = None
    smtp_from: str = "correlated@localhost"
    timeout: float = 10.0
    lease: float = 60.0


def from_config(config: dict[str, Any]) -> AlertSettings:
    return AlertSettings(
        base_url=(config.get("PUBLIC_URL") or DEFAULT_BASE_URL).rstrip("/"),
        allow_private=bool(config.get("ALLOW_PRIVATE_DESTINATIONS")),
        smtp_url=config.get("SMTP_URL"),
        smtp_from=config.get("SMTP_FROM") or "correlated@localhost",
        timeout=float(config.get("DELIVERY_TIMEOUT_SECONDS") or 10.0),
        lease=float(config.get("DELIVERY_LEASE_SECONDS") or 60.0),
    )


def current() -> AlertSettings:
    """The running app's settings (for the entry points: worker jobs, views, the CLI)."""
    return from_config(current_app.config)
