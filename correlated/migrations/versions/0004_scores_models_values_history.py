"""scores: models, current values with contributions, daily history

Revision ID: 0004_scores
Revises: 0004_exports
Create Date: 2026-12-02 06:30:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0004_scores"
down_revision = "0004_catalog"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade():
    op.create_table(
        "score_models",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("object", sa.String(length=16), nullable=False),
        sa.Column("inputs", JSON, nullable=False),
        sa.Column("tiers", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("inputs_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
    )
    op.create_table(
        "score_values",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=255), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("tier", sa.String(length=64), nullable=True),
        sa.Column("contributions", JSON, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id", "model_id"],
                                ["score_models.workspace_id", "score_models.id"],
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", "model_id", "entity_id"),
    )
    with op.batch_alter_table("score_values", schema=None) as batch_op:
        batch_op.create_index("ix_score_values_score", ["workspace_id", "model_id", "score"])
        batch_op.create_index("ix_score_values_entity", ["workspace_id", "entity_id"])
    op.create_table(
        "score_history",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("tier", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id", "model_id"],
                                ["score_models.workspace_id", "score_models.id"],
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", "model_id", "entity_id", "day"),
    )
    with op.batch_alter_table("score_history", schema=None) as batch_op:
        batch_op.create_index("ix_score_history_day", ["workspace_id", "model_id", "day"])


def downgrade():
    with op.batch_alter_table("score_history", schema=None) as batch_op:
        batch_op.drop_index("ix_score_history_day")
    op.drop_table("score_history")
    with op.batch_alter_table("score_values", schema=None) as batch_op:
        batch_op.drop_index("ix_score_values_entity")
        batch_op.drop_index("ix_score_values_score")
    op.drop_table("score_values")
    op.drop_table("score_models")
