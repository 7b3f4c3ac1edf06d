"""Destinations: create (checked against SSRF), list, rotate the signing secret, delete."""
from __future__ import annotations

import base64
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..ingest.engine import check_json
from ..models import utcnow
from . import network
from .models import DESTINATION_KINDS, Destination, aware
from .settings import AlertSettings

SECRET_PREFIX = "whsec_"
ROTATION_GRACE = timedelta(hours=24)  # the old secret keeps signing this long after a rotation
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SLACK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")


class Invalid(ValueError):
    """A destination that cannot be saved; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def storable(value: Any) -> bool:
    """A string either database can hold and compare (no NUL, no lone surrogate)."""
    return isinstance(value, str) and check_json(value) is None


def text_field(value: Any, field: str, limit: int) -> str:
    """A required, storable, non-blank string of at most `limit` characters, stripped."""
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise Invalid({field: f"required: a string of at most {limit} characters"})
    if not storable(value):
        raise Invalid({field: check_json(value)})
    return value.strip()


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def mask(value: str | None, keep: int = 4) -> str | None:
    """Enough of a secret to recognise it, never enough to use it."""
    if not value:
        return value
    return value[: len(SECRET_PREFIX)] + "…" + value[-keep:] if value.startswith(SECRET_PREFIX) \
        else value[: min(len(value) // 3, 30)] + "…" + value[-keep:]


def check_target(kind: str, target: Any, settings: AlertSettings) -> str:
    """The cleaned URL or address, or Invalid naming `url`/`address` and the problem."""
    field = "address" if kind == "email" else "url"
    target = text_field(target, field, 2048)
    if kind == "email":
        if not EMAIL_RE.match(target):
            raise Invalid({field: "not an email address"})
        if not settings.smtp_url:
            raise Invalid({field: "email needs an SMTP server: set CORRELATED_SMTP_URL"})
        return target
    try:
        _scheme, host, port = network.check_url(target)
        if kind == "slack" and not settings.allow_private and host not in SLACK_HOSTS:
            raise network.Refused("a Slack incoming webhook URL is on hooks.slack.com")
        network.resolve(host, port, settings.allow_private)
    except network.Refused as exc:
        raise Invalid({field: str(exc)}) from None
    return target


def create_destination(session: Session, workspace_id: int, name: Any, kind: Any, target: Any,
                       settings: AlertSettings) -> Destination:
    """A new destination (webhooks get a fresh secret); the caller commits."""
    if kind not in DESTINATION_KINDS:
        raise Invalid({"kind": f"must be one of {', '.join(DESTINATION_KINDS)}"})
    name = text_field(name, "name", 120)
    destination = Destination(workspace_id=workspace_id, name=name, kind=kind,
                              target=check_target(kind, target, settings),
                              secret=new_secret() if kind == "webhook" else None)
    session.add(destination)
    session.flush()
    return destination


def rotate_secret(destination: Destination, now: datetime | None = None) -> str:
    """A new signing secret; the current one keeps signing for ROTATION_GRACE."""
    if destination.kind != "webhook":
        raise Invalid({"kind": "only webhook destinations have a signing secret"})
    now = now or utcnow()
    destination.previous_secret = destination.secret
    destination.previous_secret_expires_at = now + ROTATION_GRACE
    destination.secret = new_secret()
    return destination.secret


def signing_secrets(destination: Destination, now: datetime) -> list[str]:
    """The secrets to sign with now: the current one, and the previous one during its grace."""
    found = [destination.secret] if destination.secret else []
    expires = destination.previous_secret_expires_at
    if destination.previous_secret and expires is not None and aware(expires) > now:
        found.append(destination.previous_secret)
    return found


def list_destinations(session: Session, workspace_id: int) -> list[Destination]:
    return list(session.scalars(sa.select(Destination).where(
        Destination.workspace_id == workspace_id).order_by(Destination.created_at)))


def find_destination(session: Session, workspace_id: int,
                     destination_id: str) -> Destination | None:
    return session.get(Destination, (workspace_id, destination_id)) \
        if storable(destination_id) else None


def to_dict(destination: Destination, reveal_secret: bool = False) -> dict[str, Any]:
    """What the API and pages show: the secret in full only right after it was made."""
    secret = destination.secret if reveal_secret else mask(destination.secret)
    # a Slack webhook URL is itself the credential
    shown_target = mask(destination.target, 6) if destination.kind == "slack" \
        else destination.target
    return {"id": destination.id, "name": destination.name, "kind": destination.kind,
            ("address" if destination.kind == "email" else "url"): shown_target,
            "secret": secret, "previous_secret_expires_at": destination.previous_secret_expires_at,
            "created_at": destination.created_at}
