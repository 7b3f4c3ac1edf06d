"""Alert tables: destinations, rules, and the outbox (deliveries and their attempts)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models import UTC, JSONType, new_id, tenant_fk, utcnow

DESTINATION_KINDS = ("slack", "webhook", "email")
RULE_ON = ("enter", "exit", "both")
STATUSES = ("pending", "delivered", "failed")


def aware(moment: datetime) -> datetime:
    """A UTC datetime as read back from either database (SQLite hands back naive ones)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def message_id() -> str:
    """A Standard Webhooks message id (`webhook-id`), kept for every retry of one delivery."""
    return "msg_" + new_id()


class Destination(db.Model):
    """Where alerts go. `secret` signs webhooks; during a rotation `previous_secret` still signs
    until `previous_secret_expires_at`, so receivers can switch over without a gap."""

    __tablename__ = "alert_destinations"
    workspace_id: Mapped[int] = tenant_fk()
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(120))
    kind: Mapped[str] = mapped_column(sa.String(16))  # slack | webhook | email
    target: Mapped[str] = mapped_column(sa.String(2048))  # URL, or the email address
    secret: Mapped[str | None] = mapped_column(sa.String(128))
    previous_secret: Mapped[str | None] = mapped_column(sa.String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTC)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)


class AlertRule(db.Model):
    """Tell a destination when entities enter and/or exit a signal."""

    __tablename__ = "alert_rules"
    workspace_id: Mapped[int] = tenant_fk()
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    signal_id: Mapped[str] = mapped_column(sa.String(64))  # no FK: signals arrive separately
    on: Mapped[str] = mapped_column(sa.String(8), default="enter")  # enter | exit | both
    destination_id: Mapped[str] = mapped_column(sa.String(32))
    cooldown_days: Mapped[int] = mapped_column(default=1)
    owner_dimension: Mapped[str | None] = mapped_column(sa.String(128))
    digest_threshold: Mapped[int] = mapped_column(default=10)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id", "destination_id"],
                                ["alert_destinations.workspace_id", "alert_destinations.id"],
                                ondelete="CASCADE"),
        sa.Index("ix_alert_rules_signal", "workspace_id", "signal_id"),
    )


class Delivery(db.Model):
    """One message to send (the outbox). Its id is the `webhook-id`, the same on every retry.

    Pending rows are due at `next_attempt_at`; a worker claiming one pushes that time a lease
    ahead, so a worker killed mid-send leaves it to be claimed again once the lease runs out.
    """

    __tablename__ = "alert_deliveries"
    workspace_id: Mapped[int] = tenant_fk()
    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True, default=message_id)
    destination_id: Mapped[str] = mapped_column(sa.String(32))
    rule_id: Mapped[str | None] = mapped_column(sa.String(32))
    signal_id: Mapped[str | None] = mapped_column(sa.String(64))
    type: Mapped[str] = mapped_column(sa.String(32))  # signal.entered | signal.exited | test
    entity_key: Mapped[str] = mapped_column(sa.String(300))  # "account:<id>": ordering, cooldown
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    retry_until: Mapped[datetime] = mapped_column(UTC)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTC)
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id", "destination_id"],
                                ["alert_destinations.workspace_id", "alert_destinations.id"],
                                ondelete="CASCADE"),
        sa.Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
        sa.Index("ix_alert_deliveries_entity", "workspace_id", "destination_id", "entity_key",
                 "created_at"),
        sa.Index("ix_alert_deliveries_rule", "workspace_id", "rule_id", "entity_key",
                 "created_at"),
    )


class DeliveryAttempt(db.Model):
    """One try at sending a delivery: what the destination answered."""

    __tablename__ = "alert_delivery_attempts"
    workspace_id: Mapped[int] = tenant_fk()
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    delivery_id: Mapped[str] = mapped_column(sa.String(40))
    at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    status: Mapped[str] = mapped_column(sa.String(16))  # delivered | retry | failed
    response_code: Mapped[int | None] = mapped_column()
    response_snippet: Mapped[str | None] = mapped_column(sa.String(1024))
    error: Mapped[str | None] = mapped_column(sa.String(1024))
    duration_ms: Mapped[int | None] = mapped_column()
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id", "delivery_id"],
                                ["alert_deliveries.workspace_id", "alert_deliveries.id"],
                                ondelete="CASCADE"),
        sa.Index("ix_alert_delivery_attempts_delivery", "workspace_id", "delivery_id", "at"),
    )
