"""What every dashboard page shares: sign-in gate, workspace scoping, navigation."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import abort, current_app, g, redirect, request, url_for
from flask_login import current_user

from ..analytics import summaries
from ..auth import Principal, current_principal
from ..extensions import db
from ..models import Workspace
from .blueprint import bp

PUBLIC_ENDPOINTS = {"dashboard.login", "dashboard.choose_workspace"}
# Pages that read the summaries (analytics/summaries.py): each refreshes them first.
SUMMARY_PAGES = {"dashboard.index", "dashboard.accounts", "dashboard.account", "dashboard.users",
                 "dashboard.user", "dashboard.events"}

# (section, label, endpoint, path, icon); an endpoint not registered links to its plain path.
NAV = [
    (None, "Overview", "dashboard.index", "/", "overview"),
    (None, "Accounts", "dashboard.accounts", "/accounts", "accounts"),
    (None, "Users", "dashboard.users", "/users", "users"),
    (None, "Events", "dashboard.events", "/events", "events"),
    (None, "Signals", "dashboard.signals", "/signals", "filter"),
    (None, "Scores", "dashboard.scores", "/scores", "score"),
    ("Data", "Fields", "dashboard.fields", "/fields", "fields"),
    ("Data", "Connections", "dashboard.connections", "/connections", "connections"),
    ("Settings", "API keys", "dashboard.keys", "/settings/keys", "key"),
    ("Settings", "Members", "dashboard.members", "/settings/members", "members"),
    ("Settings", "Browser SDKs", "dashboard.browser_sdks", "/settings/browser", "connections"),
    ("Settings", "Password", "dashboard.change_password", "/settings/password", "key"),
    ("Settings", "Destinations", "dashboard.destinations_page", "/settings/destinations", "inbox"),
]


@bp.before_request
def require_login():
    """Every dashboard page but the login page needs a signed-in member."""
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))


@bp.before_request
def refresh_summaries() -> None:
    """Once per page that reads the summaries, before its reads, as a unit of work of its own
    (the page's reads then never write or commit)."""
    if request.endpoint in SUMMARY_PAGES:
        summaries.ensure_fresh(db.session, workspace_id())


def principal() -> Principal:
    """The signed-in member as a principal (the gate above guarantees there is one)."""
    found = current_principal()
    if found is None or found.kind != "member":
        abort(401)
    return found


def workspace_id() -> int:
    return principal().workspace_id


def require_admin() -> None:
    if not principal().is_admin:
        abort(403, "Only workspace admins can do this.")


def safe_next(target: str | None) -> str | None:
    """A same-site path to go back to after signing in, or None (never another host)."""
    if not target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return None  # CR/LF would split the Location header
    # Browsers read a backslash as a slash ("/\\evil.com" goes to evil.com): judge it as one.
    target = target.replace("\\", "/")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _href(endpoint: str, path: str) -> str:
    return url_for(endpoint) if endpoint in current_app.view_functions else path


def _active(endpoint: str, href: str) -> bool:
    if request.endpoint == endpoint:
        return True
    # Detail pages light up their list (/accounts/x -> Accounts); "/" only matches itself.
    return href != "/" and (request.path == href or request.path.startswith(href + "/"))


def nav_sections() -> list[dict[str, Any]]:
    """The sidebar: sections of {label, href, icon, active}."""
    sections: list[dict[str, Any]] = []
    for section, label, endpoint, path, icon in NAV:
        if not sections or sections[-1]["title"] != section:
            sections.append({"title": section, "items": []})
        href = _href(endpoint, path)
        sections[-1]["items"].append(
            {"label": label, "href": href, "icon": icon, "active": _active(endpoint, href)})
    return sections


def current_workspace_name() -> str:
    if "workspace_name" not in g:
        found = current_principal()
        workspace = db.session.get(Workspace, found.workspace_id) if found else None
        g.workspace_name = workspace.name if workspace else ""
    return g.workspace_name


@bp.app_template_global("connections_url")
def connections_url() -> str:
    """The connections page (built by another module; its plain path until it exists)."""
    return _href("dashboard.connections", "/connections")


@bp.app_context_processor
def shell_helpers() -> dict[str, Any]:
    return {"nav_sections": nav_sections, "current_workspace_name": current_workspace_name,
            "is_admin": lambda: bool(current_principal() and current_principal().is_admin)}
