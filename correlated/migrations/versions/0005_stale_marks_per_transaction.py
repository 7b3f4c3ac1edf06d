"""stale_keys: one row per marking statement with its keys as a JSON array, never merged
into another writer's row, so that a refresh cannot take a mark whose writer has not committed
(see models.StaleKey)

Revision ID: 0005_stalemarks
Revises: 0004_scores
Create Date: 2026-12-02 11:00:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0005_stalemarks"
down_revision = "0004_scores"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade():
    op.create_table(
        "stale_marks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("keys", JSON, nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    aggregate = ("jsonb_agg(key)" if op.get_bind().dialect.name == "postgresql"
                 else "json_group_array(key)")
    op.execute("INSERT INTO stale_marks (workspace_id, kind, keys) SELECT workspace_id, kind, "
               f"{aggregate} FROM stale_keys GROUP BY workspace_id, kind")
    op.drop_table("stale_keys")
    op.rename_table("stale_marks", "stale_keys")
    op.create_index("ix_stale_keys_workspace_id", "stale_keys", ["workspace_id"])


def downgrade():
    op.create_table(
        "stale_keys_old",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", "kind", "key"),
    )
    keys = ("jsonb_array_elements_text(m.keys) AS k (value)"
            if op.get_bind().dialect.name == "postgresql" else "json_each(m.keys) AS k")
    op.execute("INSERT INTO stale_keys_old (workspace_id, kind, key) SELECT DISTINCT "
               f"m.workspace_id, m.kind, k.value FROM stale_keys AS m, {keys}")
    op.drop_index("ix_stale_keys_workspace_id", table_name="stale_keys")
    op.drop_table("stale_keys")
    op.rename_table("stale_keys_old", "stale_keys")
