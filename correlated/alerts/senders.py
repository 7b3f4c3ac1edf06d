"""Sending one delivery: Slack incoming webhooks, Standard Webhooks-signed HTTP, SMTP email.

Each sender answers an Outcome: delivered, retry (timeouts, connection errors, 429, 5xx) or
failed (anything else: a 4xx, a refused address, a redirect)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import smtplib
import socket
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from . import messages, network
from .settings import AlertSettings

MAX_RETRY_AFTER = 3600.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A claimed delivery with what sending it needs, read before the claim committed."""

    workspace_id: int
    id: str
    type: str
    payload: dict[str, Any]
    kind: str
    target: str
    secrets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered | retry | failed
    code: int | None = None
    snippet: str | None = None
    error: str | None = None
    retry_after: float | None = None
    duration_ms: int | None = None


def send(job: Job, settings: AlertSettings, now: datetime) -> Outcome:
    """Send one delivery; never raises for anything the destination does."""
    sender: Callable[[Job, AlertSettings, datetime], Outcome] = SENDERS[job.kind]
    try:
        return sender(job, settings, now)
    except network.Refused as exc:
        return Outcome("failed", error=f"refused: {exc}")
    except (OSError, http.client.HTTPException, smtplib.SMTPException) as exc:
        return Outcome("retry", error=_describe(exc))
    except Exception as exc:  # a message we cannot build: record it, keep the worker going
        log.exception("delivery %s could not be sent", job.id)
        return Outcome("failed", error=f"could not be sent: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    kind = "timeout" if isinstance(exc, (socket.timeout, TimeoutError)) else type(exc).__name__
    return f"{kind}: {exc}"[:1024]


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _http_outcome(response: network.Response) -> Outcome:
    code = response.status
    if 200 <= code < 300:
        status, error = "delivered", None
    elif code in (408, 429) or code >= 500:
        status, error = "retry", f"HTTP {code}"
    elif 300 <= code < 400:
        status, error = "failed", f"HTTP {code}: redirects are not followed"
    else:
        status, error = "failed", f"HTTP {code}"
    return Outcome(status, code, response.snippet, error, _retry_after(response),
                   response.duration_ms)


def _retry_after(response: network.Response) -> float | None:
    raw = response.headers.get("retry-after")
    try:
        return min(max(float(raw), 0.0), MAX_RETRY_AFTER) if raw else None
    except ValueError:
        return None  # an HTTP date: the ordinary backoff will do


def _post(job: Job, body: bytes, headers: dict[str, str], settings: AlertSettings) -> Outcome:
    return _http_outcome(network.post(job.target, body, headers, settings.timeout,
                                      settings.allow_private))


# --- Slack ----------------------------------------------------------------------------------

def send_slack(job: Job, settings: AlertSettings, now: datetime) -> Outcome:
    return _post(job, encode(messages.slack_message(job.payload)), {}, settings)


# --- Standard Webhooks ----------------------------------------------------------------------

def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the base64 key of a whsec_ secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def webhook_headers(job: Job, body: bytes, now: datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    return {"webhook-id": job.id, "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(sign(s, job.id, timestamp, body) for s in job.secrets)}


def send_webhook(job: Job, settings: AlertSettings, now: datetime) -> Outcome:
    body = encode(job.payload)
    return _post(job, body, webhook_headers(job, body, now), settings)


# --- email ----------------------------------------------------------------------------------

def email_message(job: Job, settings: AlertSettings) -> EmailMessage:
    text, html = messages.email_bodies(job.payload)
    message = EmailMessage()
    message["Subject"] = messages.subject(job.payload)
    message["From"] = settings.smtp_from
    message["To"] = job.target
    message["Message-ID"] = make_msgid(idstring=job.id)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def send_email(job: Job, settings: AlertSettings, now: datetime) -> Outcome:
    if not settings.smtp_url:
        return Outcome("retry", error="CORRELATED_SMTP_URL is not set")
    url = urlsplit(settings.smtp_url)
    options = parse_qs(url.query)
    client = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    try:
        with client(url.hostname or "localhost", url.port or 0, timeout=settings.timeout) as smtp:
            if options.get("starttls", [""])[0].lower() in ("1", "true", "yes"):
                smtp.starttls()
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(email_message(job, settings))
    except smtplib.SMTPRecipientsRefused as exc:
        return Outcome("failed", error=_describe(exc))
    except smtplib.SMTPResponseException as exc:
        status = "failed" if exc.smtp_code >= 500 else "retry"
        return Outcome(status, exc.smtp_code, error=_describe(exc))
    return Outcome("delivered", 250)


SENDERS: dict[str, Callable[[Job, AlertSettings, datetime], Outcome]] = {
    "slack": send_slack, "webhook": send_webhook, "email": send_email}
