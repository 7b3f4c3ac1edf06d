"""signal_pending_keys: the accounts and users each summaries refresh took, for incremental
signal evaluation

Revision ID: 0004_signalsdone
Revises: 0004_exports (the last on main when this branch was rebased)
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_signalsdone"
down_revision = "0004_exports"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "signal_pending_keys",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", "at", "kind", "key"),
    )


def downgrade():
    op.drop_table("signal_pending_keys")
