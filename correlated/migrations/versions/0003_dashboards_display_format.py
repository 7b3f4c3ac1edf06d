"""fields.display_format: how the dashboards show a field's values; ingest_log.counts: what
the accepted rows of a request did (created, updated, removed, duplicates)

Revision ID: 0003_dashboards
Revises: 0003_access
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = "0003_dashboards"
down_revision = "0003_delivery"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("fields") as batch:
        batch.add_column(sa.Column("display_format", sa.String(length=32), nullable=True))
    with op.batch_alter_table("ingest_log") as batch:
        batch.add_column(sa.Column("counts", sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True))
    # The default money fields of existing workspaces, as new workspaces get them.
    op.execute("UPDATE fields SET display_format = 'currency:USD' "
               "WHERE object = 'account' AND key IN ('arr', 'mrr') AND is_default")


def downgrade():
    with op.batch_alter_table("ingest_log") as batch:
        batch.drop_column("counts")
    with op.batch_alter_table("fields") as batch:
        batch.drop_column("display_format")
