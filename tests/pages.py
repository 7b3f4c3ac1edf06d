"""For the dashboard security tests: browser sessions with their CSRF token, and a workspace's
state as plain values (to show a request changed nothing)."""
from __future__ import annotations

import json
import re

import sqlalchemy as sa

from correlated.alerts.models import Delivery, Destination
from correlated.models import (Account, ApiKey, Event, Field, Member, User, WebhookConnection,
                               Workspace)
from correlated.scores.models import ScoreModel, ScoreValue

STATE = {Account: ("account_id", "name", "traits", "archived_at"),
         User: ("user_id", "email", "account_id", "traits", "archived_at"),
         Event: ("event_id", "event", "properties"), Field: ("object", "key", "label", "type"),
         WebhookConnection: ("id", "name", "enabled", "enforce_auth", "auth_token", "mapping",
                             "latest_payload"),
         ApiKey: ("id", "name", "revoked_at"), Member: ("email", "role"),
         Destination: ("id", "name", "target", "secret"), Delivery: ("id", "status"),
         Workspace: ("name", "browser_write_key", "allowed_origins"),
         ScoreModel: ("id", "name", "inputs", "tiers"),
         ScoreValue: ("model_id", "entity_id", "score", "tier")}


def token_of(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def signed_in(app, email: str, password: str):
    """A browser session of this member, and its CSRF token."""
    client = app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client, token_of(client.get("/settings/keys").get_data(as_text=True))


def snapshot(db, workspace_id: int) -> dict[str, list[str]]:
    """Everything of a workspace a request might change, as plain values."""
    db.session.rollback()  # a fresh read, after the request's own transaction
    return {model.__name__: sorted(
        json.dumps([getattr(row, c) for c in columns], default=str) for row in db.session.scalars(
            sa.select(model).where(owner(model) == workspace_id)))
        for model, columns in STATE.items()}


def owner(model):
    """The column naming a row's workspace (the workspace's own ID for the workspace itself)."""
    return model.id if model is Workspace else model.workspace_id
