"""Browser SDKs (analytics.js, analytics-next): their write key, allowed origins and CORS.

A page's JavaScript shows its write key to every visitor, so a browser never gets an API key
(which reads and deletes data too): each workspace has a public browser write key that only the
browser paths (/v1/t, /i, /p, /g, /a, /b) accept, and only from the origins an admin lists.
"""
from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Response, request
from sqlalchemy.orm import Session

from ..auth import KEY_PREFIX
from ..errors import ApiError
from ..models import Workspace

BROWSER_KEY_PREFIX = "pub_"
BROWSER_KINDS = {"t": "track", "i": "identify", "p": "page", "g": "group", "a": "alias",
                 "b": "batch"}
ANY_ORIGIN = "*"
MAX_ORIGINS = 50
PREFLIGHT_MAX_AGE = "600"


def issue_browser_key(session: Session, workspace: Workspace) -> str:
    """A new public write key for the workspace (the old one stops working)."""
    workspace.browser_write_key = BROWSER_KEY_PREFIX + secrets.token_urlsafe(24)
    session.flush()
    return workspace.browser_write_key


def browser_workspace(session: Session, key: object) -> Workspace:
    """The workspace whose browser write key this is, or a 401 saying what to send."""
    if isinstance(key, str) and key.startswith(KEY_PREFIX):
        raise ApiError(401, "writeKey: an API key must never be in a web page (it reads and "
                            "deletes data too); revoke it, and use the workspace's browser "
                            "write key (Settings → Browser SDKs)")
    if not isinstance(key, str) or not key.startswith(BROWSER_KEY_PREFIX):
        raise ApiError(401, "writeKey: send the workspace's browser write key (pub_…, "
                            "Settings → Browser SDKs)")
    workspace = session.scalars(sa.select(Workspace).where(
        Workspace.browser_write_key == key)).first()
    if workspace is None:
        raise ApiError(401, "writeKey: unknown or replaced browser write key")
    return workspace


# --- origins --------------------------------------------------------------------------------

def normalize_origin(text: str) -> str:
    """`https://Shop.example.com/` -> `https://shop.example.com`, as browsers send Origin; a
    ValueError naming what is wrong otherwise."""
    text = text.strip()
    if text == ANY_ORIGIN:
        return text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r}: expected an origin like https://www.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{text!r}: an origin is a scheme, a host and a port only (no path)")
    default = {"http": 80, "https": 443}[parts.scheme]
    port = "" if parts.port in (None, default) else f":{parts.port}"
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


def parse_origins(text: str) -> list[str]:
    """One origin a line (or separated by commas or spaces), normalized, in order, once each."""
    found: list[str] = []
    for item in text.replace(",", " ").split():
        origin = normalize_origin(item)
        if origin not in found:
            found.append(origin)
    if len(found) > MAX_ORIGINS:
        raise ValueError(f"at most {MAX_ORIGINS} origins")
    return found


def allows(origins: list[str], origin: str | None) -> bool:
    return origin is not None and (origin in origins or ANY_ORIGIN in origins)


def origin_problem(workspace: Workspace, origin: str | None) -> str | None:
    """Why a page at `origin` may not send to this workspace, or None."""
    if origin is None:
        return "Origin: required (the browser paths take requests from web pages only)"
    if not allows(workspace.allowed_origins or [], origin):
        return (f"Origin: {origin} is not allowed to send to this workspace; an admin adds it "
                f"under Settings → Browser SDKs")
    return None


def any_workspace_allows(session: Session, origin: str | None) -> bool:
    """For a preflight, which carries no write key: does any workspace allow `origin`?"""
    if origin is None:
        return False
    lists = session.scalars(sa.select(Workspace.allowed_origins).where(
        Workspace.browser_write_key.is_not(None)))
    return any(allows(origins or [], origin) for origins in lists)


def with_cors(response: Response, origin: str) -> Response:
    """Let the page at `origin` read the answer (no cookies are ever involved)."""
    response.headers["Access-Control-Allow-Origin"] = origin
    response.vary.add("Origin")
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "POST"
        # analytics-next also sends the write key as HTTP Basic, so it preflights
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return response
