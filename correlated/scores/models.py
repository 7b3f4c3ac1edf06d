"""Tables of scores: the models, each entity's current value with its reasons, and one history
row per entity per day. Models never commit."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models import UTC, JSONType, new_id, tenant_fk, utcnow


class ScoreModel(db.Model):
    """A weighted score of accounts or users: `inputs` (source, transform, weight, group) and
    `tiers` (named lower bounds of the score, highest first)."""

    __tablename__ = "score_models"
    workspace_id: Mapped[int] = tenant_fk()
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(120))
    object: Mapped[str] = mapped_column(sa.String(16))  # account | user
    inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    # When it was last computed, and the summaries' refresh time that computation saw.
    computed_at: Mapped[datetime | None] = mapped_column(UTC)
    inputs_at: Mapped[datetime | None] = mapped_column(UTC)


class ScoreValue(db.Model):
    """An entity's current score: the tier it falls in and each input's contribution."""

    __tablename__ = "score_values"
    workspace_id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    entity_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    score: Mapped[float] = mapped_column(sa.Float)
    tier: Mapped[str | None] = mapped_column(sa.String(64))
    # One entry per input, in the model's order: {"value": raw value or null, "points": p}.
    contributions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # When the value last changed (a computation rewrites only the values it moves; the
    # model's computed_at is when they were all last computed).
    computed_at: Mapped[datetime] = mapped_column(UTC)
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id", "model_id"],
                                ["score_models.workspace_id", "score_models.id"],
                                ondelete="CASCADE"),
        sa.Index("ix_score_values_score", "workspace_id", "model_id", "score"),
        sa.Index("ix_score_values_entity", "workspace_id", "entity_id"),
    )


class ScoreHistory(db.Model):
    """An entity's score and tier at the last computation of each day."""

    __tablename__ = "score_history"
    workspace_id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    entity_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    score: Mapped[float] = mapped_column(sa.Float)
    tier: Mapped[str | None] = mapped_column(sa.String(64))
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id", "model_id"],
                                ["score_models.workspace_id", "score_models.id"],
                                ondelete="CASCADE"),
        sa.Index("ix_score_history_day", "workspace_id", "model_id", "day"),
    )


def signals_used(inputs: list[dict[str, Any]]) -> set[str]:
    """The ids of the signals a stored model's inputs use (here, not in definitions: the
    signals' validation reads it, and definitions imports the signals')."""
    return {item["source"]["signal"] for item in inputs or ()
            if isinstance(item, dict) and isinstance(item.get("source"), dict)
            and "signal" in item["source"]}
