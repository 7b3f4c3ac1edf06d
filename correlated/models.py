"""Tables. `workspace_id` leads every tenant table's primary and unique keys (Citus-ready).

Dimensions and event properties live in one portable JSON column (JSONB on PostgreSQL);
the field catalog says what each key means. Models never commit.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
UTC = sa.DateTime(timezone=True)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return uuid.uuid4().hex


def tenant_fk() -> Mapped[int]:
    return mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)


class Workspace(db.Model):
    __tablename__ = "workspaces"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    allow_custom_fields: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    # Browser SDKs (protocols/segment_browser.py): a public write key, and the only origins
    # whose pages may send with it (none until an admin lists them).
    browser_write_key: Mapped[str | None] = mapped_column(sa.String(64))
    allowed_origins: Mapped[list[str]] = mapped_column(JSONType, default=list,
                                                       server_default="[]")
    __table_args__ = (sa.Index("ix_workspaces_browser_write_key", "browser_write_key",
                               unique=True),)


class Member(db.Model):
    """A dashboard login."""

    __tablename__ = "members"
    workspace_id: Mapped[int] = tenant_fk()
    email: Mapped[str] = mapped_column(sa.String(254), primary_key=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16), default="member")  # admin | member
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    # Part of every session cookie of this member; a new value (sign-out, password change)
    # ends every session signed with the old one. Empty: no session is valid yet.
    session_token: Mapped[str] = mapped_column(sa.String(64), default="", server_default="")
    __table_args__ = (sa.Index("ix_members_email", "email"),)


class ApiKey(db.Model):
    """An ingest key: only its SHA-256 hash and a short display prefix are kept."""

    __tablename__ = "api_keys"
    workspace_id: Mapped[int] = tenant_fk()
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(120), default="default")
    prefix: Mapped[str] = mapped_column(sa.String(16))
    key_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTC)
    revoked_at: Mapped[datetime | None] = mapped_column(UTC)
    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "key_hash", name="uq_api_keys_hash"),
        sa.Index("ix_api_keys_key_hash", "key_hash"),
    )


class Field(db.Model):
    """The field catalog: default and custom fields of each object."""

    __tablename__ = "fields"
    workspace_id: Mapped[int] = tenant_fk()
    object: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(128))
    type: Mapped[str] = mapped_column(sa.String(16))
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    # number | percent | currency:<ISO 4217 code>; None shows values as sent (dashboards only)
    display_format: Mapped[str | None] = mapped_column(sa.String(32))
    # Hidden by an admin: kept and still written, but left out of pickers, lists and syncs' lists.
    hidden: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # One field per key whatever its case (`SalesRegion`, `salesregion`): syncs match it so.
    __table_args__ = (sa.Index("uq_fields_folded_key", "workspace_id", "object",
                               sa.text("lower(key)"), unique=True),)


class Account(db.Model):
    __tablename__ = "accounts"
    workspace_id: Mapped[int] = tenant_fk()
    account_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(512))
    traits: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTC)
    __table_args__ = (sa.Index("ix_accounts_name", "workspace_id", "name"),)


class User(db.Model):
    __tablename__ = "users"
    workspace_id: Mapped[int] = tenant_fk()
    user_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    email: Mapped[str | None] = mapped_column(sa.String(254))
    account_id: Mapped[str | None] = mapped_column(sa.String(255))
    traits: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTC)
    __table_args__ = (
        sa.Index("ix_users_account", "workspace_id", "account_id"),
        sa.Index("ix_users_email", "workspace_id", "email"),
    )


class Event(db.Model):
    """One event. `account_inferred` marks an account taken from the user, re-attributable later."""

    __tablename__ = "events"
    workspace_id: Mapped[int] = tenant_fk()
    event_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    event: Mapped[str] = mapped_column(sa.String(255))
    user_id: Mapped[str | None] = mapped_column(sa.String(255))
    account_id: Mapped[str | None] = mapped_column(sa.String(255))
    account_inferred: Mapped[bool] = mapped_column(default=False)
    timestamp: Mapped[datetime] = mapped_column(UTC)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    __table_args__ = (
        sa.Index("ix_events_time", "workspace_id", "timestamp"),
        sa.Index("ix_events_account_time", "workspace_id", "account_id", "timestamp"),
        sa.Index("ix_events_user_time", "workspace_id", "user_id", "timestamp"),
        sa.Index("ix_events_name_time", "workspace_id", "event", "timestamp"),
    )


# The table of each object's records.
RECORDS = {"account": Account.__table__, "user": User.__table__, "event": Event.__table__}


class DailyActivity(db.Model):
    """Events per (day, user, event name, account), maintained at ingest for the dashboards.

    Empty string stands for "no user" / "no account" so the columns can be part of the key.
    """

    __tablename__ = "daily_activity"
    workspace_id: Mapped[int] = tenant_fk()
    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    account_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    event: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    count: Mapped[int] = mapped_column(sa.BigInteger)
    last_at: Mapped[datetime] = mapped_column(UTC)
    __table_args__ = (
        sa.Index("ix_daily_activity_account", "workspace_id", "account_id", "day"),
        sa.Index("ix_daily_activity_user", "workspace_id", "user_id", "day"),
    )


class AccountMetrics(db.Model):
    """Current metrics per account as of `summary_state.as_of`, refreshed from the rollup
    (summaries.refresh): what lists sort and filter on without aggregating the rollup."""

    __tablename__ = "account_metrics"
    workspace_id: Mapped[int] = tenant_fk()
    account_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    active_users_7d: Mapped[int] = mapped_column(default=0)
    active_users_30d: Mapped[int] = mapped_column(default=0)
    events_30d: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    events_prev_30d: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    last_seen: Mapped[datetime | None] = mapped_column(UTC)
    # When a refresh last wrote the row: the export's `updated_since=` follows metric changes.
    updated_at: Mapped[datetime | None] = mapped_column(UTC, default=utcnow, onupdate=utcnow)
    __table_args__ = (sa.Index("ix_account_metrics_updated", "workspace_id", "updated_at"),)


class UserMetrics(db.Model):
    """Current metrics per user, as AccountMetrics."""

    __tablename__ = "user_metrics"
    workspace_id: Mapped[int] = tenant_fk()
    user_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    active_days_30d: Mapped[int] = mapped_column(default=0)
    events_30d: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    events_prev_30d: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    last_seen: Mapped[datetime | None] = mapped_column(UTC)
    updated_at: Mapped[datetime | None] = mapped_column(UTC, default=utcnow, onupdate=utcnow)
    __table_args__ = (sa.Index("ix_user_metrics_updated", "workspace_id", "updated_at"),)


class DailySummary(db.Model):
    """Distinct active accounts and users per day, workspace-wide."""

    __tablename__ = "daily_summary"
    workspace_id: Mapped[int] = tenant_fk()
    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    active_accounts: Mapped[int] = mapped_column(default=0)
    active_users: Mapped[int] = mapped_column(default=0)


class DailyEvents(db.Model):
    """Events per day and event name, workspace-wide."""

    __tablename__ = "daily_events"
    workspace_id: Mapped[int] = tenant_fk()
    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    event: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    count: Mapped[int] = mapped_column(sa.BigInteger)
    last_at: Mapped[datetime] = mapped_column(UTC)


class StaleKey(db.Model):
    """Accounts, users or days (ISO dates) of one `kind` whose rollup rows changed since the
    summaries above were refreshed: one row per marking statement, written in the same
    transaction as the rollup change; the refresh takes every row and their distinct keys.

    A row of its own per statement, never merged into another writer's: a mark must become
    visible when its writer's rows do. When marks were one row per key, a PostgreSQL writer
    whose INSERT ... ON CONFLICT DO NOTHING met a committed mark of the same key wrote nothing
    of its own, and a refresh that took that mark before the writer committed never saw its
    rows (tests/analytics/test_summaries.py, keeps_the_mark). The keys travel as one JSON
    array: a 1,000-event batch writes three short rows, not a thousand."""

    __tablename__ = "stale_keys"
    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                    primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(8))  # account | user | day
    keys: Mapped[list[str]] = mapped_column(JSONType)


class SummaryState(db.Model):
    """The day the account and user metrics were computed for (their windows end on it)."""

    __tablename__ = "summary_state"
    workspace_id: Mapped[int] = tenant_fk()
    as_of: Mapped[date] = mapped_column(sa.Date)
    # When a refresh last took stale keys or moved the windows: what signals evaluate after.
    refreshed_at: Mapped[datetime | None] = mapped_column(UTC)


class IngestLog(db.Model):
    """One row per request received on any protocol."""

    __tablename__ = "ingest_log"
    workspace_id: Mapped[int] = tenant_fk()
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    received_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    protocol: Mapped[str] = mapped_column(sa.String(32))
    object: Mapped[str | None] = mapped_column(sa.String(16))
    operation: Mapped[str | None] = mapped_column(sa.String(16))
    rows_received: Mapped[int] = mapped_column(default=0)
    rows_accepted: Mapped[int] = mapped_column(default=0)
    rows_rejected: Mapped[int] = mapped_column(default=0)
    rejected_sample: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    payload: Mapped[Any] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text)
    # What the accepted rows did: {created, updated, removed, duplicates} (None before 0003)
    counts: Mapped[dict[str, int] | None] = mapped_column(JSONType, nullable=True)
    __table_args__ = (sa.Index("ix_ingest_log_received", "workspace_id", "received_at"),)


class WebhookConnection(db.Model):
    """An inbound webhook (Variance style): its own URL, header secret, mapping and latest payload."""

    __tablename__ = "webhook_connections"
    workspace_id: Mapped[int] = tenant_fk()
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    object: Mapped[str] = mapped_column(sa.String(16))
    behavior: Mapped[str] = mapped_column(sa.String(16), default="upsert")
    enabled: Mapped[bool] = mapped_column(default=False)
    enforce_auth: Mapped[bool] = mapped_column(default=True)
    auth_token: Mapped[str] = mapped_column(sa.String(128))
    mapping: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    latest_payload: Mapped[Any] = mapped_column(JSONType, nullable=True)
    latest_payload_at: Mapped[datetime | None] = mapped_column(UTC)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    # True: a batch with any rejected row stores nothing and answers 422, so the sender retries it
    all_or_nothing: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    __table_args__ = (sa.Index("ix_webhook_connections_id", "id"),)


class HeldPayload(db.Model):
    """A request a disabled connection received, byte for byte, kept until the admin replays it."""

    __tablename__ = "held_payloads"
    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                    primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(sa.Integer)
    connection_id: Mapped[str] = mapped_column(sa.String(64))
    received_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    method: Mapped[str] = mapped_column(sa.String(8))
    content_type: Mapped[str] = mapped_column(sa.String(255), default="")
    body: Mapped[bytes] = mapped_column(sa.LargeBinary)  # decompressed, as the sender sent it
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id", "connection_id"],
                                ["webhook_connections.workspace_id", "webhook_connections.id"],
                                ondelete="CASCADE"),
        sa.Index("ix_held_payloads_connection", "workspace_id", "connection_id", "id"),
    )


class ExportReader(db.Model):
    """A read-only PostgreSQL role of `correlated db export-views`: it sees the export views'
    rows of this workspace only (the views filter on current_user through this table)."""

    __tablename__ = "export_readers"
    role_name: Mapped[str] = mapped_column(sa.String(63), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
