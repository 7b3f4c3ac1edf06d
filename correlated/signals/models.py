"""Tables of signals: definitions, current members, the append-only transition history, and
the dimension history written by ingest. Models never commit."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models import UTC, JSONType, new_id, tenant_fk, utcnow

CATEGORIES = ("expansion", "conversion", "churn_risk", "other")


class Signal(db.Model):
    """A saved segment of accounts or users: `match` (all | any) over `conditions`."""

    __tablename__ = "signals"
    workspace_id: Mapped[int] = tenant_fk()
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(120))
    category: Mapped[str] = mapped_column(sa.String(16), default="other")
    object: Mapped[str] = mapped_column(sa.String(16))  # account | user
    match: Mapped[str] = mapped_column(sa.String(8), default="all")
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    # When it was last evaluated, and for which inputs (the summaries' refresh time it saw).
    evaluated_at: Mapped[datetime | None] = mapped_column(UTC)
    inputs_at: Mapped[datetime | None] = mapped_column(UTC)


class SignalMember(db.Model):
    """An entity currently in a signal; `backfill` marks those found by its first evaluation."""

    __tablename__ = "signal_members"
    workspace_id: Mapped[int] = mapped_column(primary_key=True)
    signal_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    entity_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    entered_at: Mapped[datetime] = mapped_column(UTC)
    backfill: Mapped[bool] = mapped_column(default=False)
    values: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id", "signal_id"], ["signals.workspace_id", "signals.id"],
                                ondelete="CASCADE"),
        sa.Index("ix_signal_members_entity", "workspace_id", "entity_id"),
    )


class Transition(db.Model):
    """An entity entering or leaving a signal, with the values that decided it (append-only)."""

    __tablename__ = "signal_transitions"
    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"))
    signal_id: Mapped[str] = mapped_column(sa.String(32))
    entity_id: Mapped[str] = mapped_column(sa.String(255))
    kind: Mapped[str] = mapped_column(sa.String(8))  # entered | exited
    at: Mapped[datetime] = mapped_column(UTC)
    backfill: Mapped[bool] = mapped_column(default=False)
    values: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id", "signal_id"], ["signals.workspace_id", "signals.id"],
                                ondelete="CASCADE"),
        sa.Index("ix_signal_transitions_signal", "workspace_id", "signal_id", "at"),
        sa.Index("ix_signal_transitions_entity", "workspace_id", "entity_id", "at"),
    )


class DimensionChange(db.Model):
    """One dimension of an account or user changing at an upsert: old and new as JSON text."""

    __tablename__ = "dimension_changes"
    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(sa.ForeignKey("workspaces.id", ondelete="CASCADE"))
    object: Mapped[str] = mapped_column(sa.String(16))
    entity_id: Mapped[str] = mapped_column(sa.String(255))
    field: Mapped[str] = mapped_column(sa.String(128))
    old_value: Mapped[str | None] = mapped_column(sa.Text)
    new_value: Mapped[str | None] = mapped_column(sa.Text)
    changed_at: Mapped[datetime] = mapped_column(UTC)
    __table_args__ = (
        sa.Index("ix_dimension_changes_entity", "workspace_id", "object", "entity_id", "changed_at"),
        sa.Index("ix_dimension_changes_field", "workspace_id", "object", "field", "changed_at"),
    )


class PendingKey(db.Model):
    """An account or user whose inputs changed, as a summaries refresh took it (at: that
    refresh's time): what an incremental evaluation looks at. Key "" means every entity (a full
    refresh). Kept until every signal of the workspace has evaluated past it."""

    __tablename__ = "signal_pending_keys"
    workspace_id: Mapped[int] = tenant_fk()
    at: Mapped[datetime] = mapped_column(UTC, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(8), primary_key=True)  # account | user
    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
