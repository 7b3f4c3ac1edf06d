"""Fixtures: every database test runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from CORRELATED_TEST_POSTGRES_URL (default: the local server, database
`test`). Each pytest worker gets its own freshly migrated database; each test starts from empty
tables. A PostgreSQL that cannot be reached is an error, never a skip.
"""
from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from correlated import MIGRATIONS, create_app
from correlated.auth import issue_key
from correlated.extensions import db as _db
from correlated.models import Workspace
from correlated.workspaces import create_workspace

from .servers import free_port

POSTGRES_URL = os.environ.get("CORRELATED_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADMIN_PASSWORD = "correct horse battery staple"


def _migrate(url: str) -> None:
    from flask_migrate import upgrade

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "test"})
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))
        _db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    _migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database(worker_id: str) -> Iterator[str]:
    """A database of this worker's own, migrated once."""
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"correlated_test_{worker_id}_{os.getpid()}"  # concurrent runs never share one
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for the database tests ({POSTGRES_URL}): {exc}")
    url = sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    _migrate(url)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def worker_id(request) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


def _empty_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"))]
        conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """An empty, migrated database on each engine."""
    if request.param == "sqlite":
        path = tmp_path / "correlated.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_database")
    _empty_postgres(url)
    return url


@pytest.fixture
def app(database_url):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "test-secret",
                      "TESTING": True})
    with app.app_context():
        yield app
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture
def db(app):
    return _db


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@dataclass
class Tenant:
    workspace: Workspace
    key: str
    admin_email: str
    admin_password: str = ADMIN_PASSWORD

    @property
    def id(self) -> int:
        return self.workspace.id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def make_tenant(name: str) -> Tenant:
    email = f"admin@{name}.example"
    ws = create_workspace(_db.session, name, email, ADMIN_PASSWORD)
    _key, plaintext = issue_key(_db.session, ws, "test")
    _db.session.commit()
    return Tenant(ws, plaintext, email)


@pytest.fixture
def tenant(app) -> Tenant:
    """A workspace with an admin login and an API key."""
    return make_tenant("acme")


@pytest.fixture
def other_tenant(app) -> Tenant:
    """A second workspace, for isolation tests."""
    return make_tenant("globex")


@pytest.fixture
def workspace(tenant) -> Workspace:
    return tenant.workspace


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app behind a real HTTP server on a loopback port; yields its base URL."""
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    # A short poll interval: shutdown() waits up to one interval, for every test using this.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def fresh_g(app) -> None:
    """Each test-client request its own `g` (so its own signed-in member), as under a server:
    the `app` fixture keeps one app context open, which every request would otherwise share."""
    from flask import g

    @app.teardown_request
    def forget(_exc):
        g.__dict__.clear()
