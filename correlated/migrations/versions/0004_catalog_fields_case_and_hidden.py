"""fields: one key per field whatever its case (a unique index on lower(key), existing
differing-case keys merged into one), and `hidden`

Revision ID: 0004_catalog
Revises: 0004_exports
"""
from collections import defaultdict

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0004_catalog"
down_revision = "0004_webhooks"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# object -> (table, ID column, JSON column)
RECORDS = {"account": ("accounts", "account_id", "traits"),
           "user": ("users", "user_id", "traits"),
           "event": ("events", "event_id", "properties")}


def upgrade():
    with op.batch_alter_table("fields") as batch:
        batch.add_column(sa.Column("hidden", sa.Boolean(), server_default=sa.false(),
                                   nullable=False))
    merge_differing_case()
    op.create_index("uq_fields_folded_key", "fields",
                    ["workspace_id", "object", sa.text("lower(key)")], unique=True)


def downgrade():
    op.drop_index("uq_fields_folded_key", "fields")
    with op.batch_alter_table("fields") as batch:
        batch.drop_column("hidden")


def merge_differing_case():
    """Before 0004 a batch could register `salesregion` while its first row stored
    `SalesRegion`: each such family of keys becomes its oldest field (a default one first), and
    the records' values move to that key (a value already under it stays)."""
    bind = op.get_bind()
    fields = sa.table("fields", sa.column("workspace_id"), sa.column("object"),
                      sa.column("key"), sa.column("is_default"), sa.column("created_at"))
    families = defaultdict(list)
    for row in bind.execute(sa.select(fields)):
        families[(row.workspace_id, row.object, row.key.lower())].append(row)
    for (ws, obj, _folded), members in families.items():
        if len(members) < 2 or obj not in RECORDS:
            continue
        members.sort(key=lambda f: (not f.is_default, f.created_at, f.key))
        for loser in members[1:]:
            move_values(bind, ws, obj, loser.key, members[0].key)
            bind.execute(sa.delete(fields).where(
                fields.c.workspace_id == ws, fields.c.object == obj, fields.c.key == loser.key))


def move_values(bind, ws, obj, old, new):
    name, id_column, json_column = RECORDS[obj]
    table = sa.table(name, sa.column("workspace_id"), sa.column(id_column),
                     sa.column(json_column, JSON))
    column = table.c[json_column]
    if bind.dialect.name == "sqlite":
        has = sa.text(f"EXISTS (SELECT 1 FROM json_each({name}.{json_column}) AS j "
                      "WHERE j.key = :old)").bindparams(old=old)
    else:
        has = column.op("?", return_type=sa.Boolean)(sa.literal(old, sa.Text))
    rows = bind.execute(sa.select(table.c[id_column], column).where(
        table.c.workspace_id == ws, has)).all()
    for record_id, values in rows:
        values = dict(values)
        moved = values.pop(old)
        values.setdefault(new, moved)
        bind.execute(sa.update(table).where(table.c.workspace_id == ws,
                                            table.c[id_column] == record_id)
                     .values({json_column: values}))
