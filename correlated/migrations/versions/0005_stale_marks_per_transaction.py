"""stale_keys.txn: one mark per key and writing transaction (the writer's transaction id on
PostgreSQL, 0 on SQLite), so that a refresh cannot take a mark whose writer has not committed
(see models.StaleKey)

Revision ID: 0005_stalemarks
Revises: 0004_scores
Create Date: 2026-12-02 11:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = "0005_stalemarks"
down_revision = "0004_scores"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("stale_keys", sa.Column("txn", sa.BigInteger(), nullable=False,
                                              server_default="0"))
        op.alter_column("stale_keys", "txn", server_default=sa.text("txid_current()"))
        op.drop_constraint("stale_keys_pkey", "stale_keys", type_="primary")
        op.create_primary_key("stale_keys_pkey", "stale_keys",
                              ["workspace_id", "kind", "key", "txn"])
        return
    _rebuild_sqlite(["workspace_id", "kind", "key", "txn"])


def downgrade():
    # Several transactions' marks of one key become one.
    op.execute("DELETE FROM stale_keys WHERE txn <> (SELECT min(s.txn) FROM stale_keys AS s "
               "WHERE s.workspace_id = stale_keys.workspace_id AND s.kind = stale_keys.kind "
               "AND s.key = stale_keys.key)")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("stale_keys_pkey", "stale_keys", type_="primary")
        op.drop_column("stale_keys", "txn")
        op.create_primary_key("stale_keys_pkey", "stale_keys", ["workspace_id", "kind", "key"])
        return
    _rebuild_sqlite(["workspace_id", "kind", "key"])


def _rebuild_sqlite(key: list[str]) -> None:
    """SQLite cannot change a primary key: copy into a new table with the new one."""
    columns = [sa.Column("workspace_id", sa.Integer(), nullable=False),
               sa.Column("kind", sa.String(length=8), nullable=False),
               sa.Column("key", sa.String(length=255), nullable=False)]
    if "txn" in key:
        columns.append(sa.Column("txn", sa.BigInteger(), nullable=False, server_default="0"))
    names = ", ".join(c.name for c in columns[:3])
    op.create_table("stale_keys_new", *columns,
                    sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                            ondelete="CASCADE"),
                    sa.PrimaryKeyConstraint(*key))
    op.execute(f"INSERT INTO stale_keys_new ({names}) SELECT {names} FROM stale_keys")
    op.drop_table("stale_keys")
    op.rename_table("stale_keys_new", "stale_keys")
