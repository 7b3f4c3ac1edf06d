"""webhooks: held payloads of disabled connections; a connection's all-or-nothing choice

Revision ID: 0004_webhooks
Revises: 0004_segment
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_webhooks"
down_revision = "0004_signalsdone"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("webhook_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("all_or_nothing", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.create_table(
        "held_payloads",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id", "connection_id"],
                                ["webhook_connections.workspace_id", "webhook_connections.id"],
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("held_payloads", schema=None) as batch_op:
        batch_op.create_index("ix_held_payloads_connection",
                              ["workspace_id", "connection_id", "id"], unique=False)


def downgrade():
    with op.batch_alter_table("held_payloads", schema=None) as batch_op:
        batch_op.drop_index("ix_held_payloads_connection")
    op.drop_table("held_payloads")
    with op.batch_alter_table("webhook_connections", schema=None) as batch_op:
        batch_op.drop_column("all_or_nothing")
