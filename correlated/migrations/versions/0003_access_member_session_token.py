"""members.session_token: sessions that sign-out and password changes can end

Revision ID: 0003_access
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = "0003_access"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    # Existing members get "" (no valid session): their cookies, signed under the old id
    # format, no longer load anyway; the next sign-in sets a token.
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("session_token", sa.String(64), nullable=False,
                                   server_default=""))


def downgrade():
    with op.batch_alter_table("members") as batch:
        batch.drop_column("session_token")
