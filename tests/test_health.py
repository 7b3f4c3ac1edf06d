"""/healthz and the migrations on both engines."""
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from correlated import MIGRATIONS, create_app

TABLES = {"workspaces", "members", "api_keys", "fields", "accounts", "users", "events",
          "daily_activity", "ingest_log", "webhook_connections"}


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_healthz_reports_a_dead_database(tmp_path):
    missing = tmp_path / "no-such-dir" / "db.sqlite"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{missing}", "TESTING": True})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503 and response.json["status"] == "unavailable"


def test_migrations_build_and_drop_the_schema(app, db):
    """The fixture database was built by the migrations; they also go down and up again."""
    inspector = sa.inspect(db.engine)
    assert TABLES <= set(inspector.get_table_names())
    for table in TABLES - {"workspaces"}:
        pk = inspector.get_pk_constraint(table)["constrained_columns"]
        assert pk[0] == "workspace_id", table
    db.session.remove()
    downgrade(directory=str(MIGRATIONS), revision="base")
    assert not TABLES & set(sa.inspect(db.engine).get_table_names())
    upgrade(directory=str(MIGRATIONS))
    assert TABLES <= set(sa.inspect(db.engine).get_table_names())
