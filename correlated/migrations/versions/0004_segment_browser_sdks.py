"""workspaces.browser_write_key and allowed_origins: the browser SDKs' public write key and the
origins whose pages may send with it

Revision ID: 0004_segment
Revises: 0003_signals
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = "0004_segment"
down_revision = "0003_signals"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("browser_write_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("allowed_origins", sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False,
            server_default="[]"))
        batch.create_index("ix_workspaces_browser_write_key", ["browser_write_key"], unique=True)


def downgrade():
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_index("ix_workspaces_browser_write_key")
        batch.drop_column("allowed_origins")
        batch.drop_column("browser_write_key")
