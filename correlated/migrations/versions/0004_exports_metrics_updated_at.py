"""account_metrics.updated_at, user_metrics.updated_at: when a refresh last rewrote a record's
metrics, so that the export API's `updated_since=` sees metric changes (see protocols/export.py);
export_readers: the read-only roles of `correlated db export-views` and their workspace

Revision ID: 0004_exports
Revises: 0004_segment
"""
from alembic import op
import sqlalchemy as sa


revision = "0004_exports"
down_revision = "0004_segment"
branch_labels = None
depends_on = None

TABLES = ("account_metrics", "user_metrics")


def upgrade():
    for table in TABLES:
        # Null on rows written before this revision: the export falls back to the record's own.
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        op.create_index(f"ix_{table}_updated", table, ["workspace_id", "updated_at"])
    op.create_table(
        "export_readers",
        sa.Column("role_name", sa.String(length=63), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("role_name"),
    )


def downgrade():
    op.drop_table("export_readers")
    for table in TABLES:
        op.drop_index(f"ix_{table}_updated", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("updated_at")
