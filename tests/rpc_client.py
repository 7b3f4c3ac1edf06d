"""For the connector tests: a JSON-RPC client (jsonrpcclient builds requests and parses
responses, requests carries them over real HTTP) and database helpers."""
from __future__ import annotations

from typing import Any

import requests
from jsonrpcclient import Error, Ok, notification, parse, request


class RpcFailed(AssertionError):
    def __init__(self, error: Error):
        super().__init__(f"JSON-RPC error {error.code}: {error.message} ({error.data!r})")
        self.error = error


class Client:
    """Calls methods at `url` with the workspace key in the Authorization header."""

    def __init__(self, url: str, key: str | None, headers: dict[str, str] | None = None):
        self.url = url
        self.http = requests.Session()
        if key:
            self.http.headers["Authorization"] = f"Bearer {key}"
        self.http.headers.update(headers or {})

    def post(self, payload: Any, **kwargs: Any) -> requests.Response:
        return self.http.post(self.url, json=payload, timeout=30, **kwargs)

    def call(self, method: str, **params: Any) -> Any:
        """The method's result; a JSON-RPC error raises RpcFailed."""
        response = self.post(request(method, params=params))
        assert response.status_code == 200, (response.status_code, response.text)
        parsed = parse(response.json())
        if isinstance(parsed, Error):
            raise RpcFailed(parsed)
        assert isinstance(parsed, Ok)
        return parsed.result

    def error(self, method: str, **params: Any) -> Error:
        """The JSON-RPC error the call must produce."""
        response = self.post(request(method, params=params))
        assert response.status_code == 200, (response.status_code, response.text)
        parsed = parse(response.json())
        assert isinstance(parsed, Error), parsed
        return parsed

    def notify(self, method: str, **params: Any) -> requests.Response:
        return self.post(notification(method, params=params))


# --- the database behind the live server ---------------------------------------------------

def fresh(db, model, tenant, key):
    """The row as the database has it now (the live server wrote it on another connection)."""
    db.session.rollback()  # end the read transaction: SQLite would keep showing its snapshot
    return db.session.get(model, (tenant.id, key))


def run_ddl(db, statements):
    """DDL on its own connection; this session's open read would block it on PostgreSQL."""
    db.session.rollback()
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")  # fail, never hang
        for statement in statements:
            conn.exec_driver_sql(statement)


def refuse_account(db, name):
    """A trigger that makes the database itself refuse an account named `name`."""
    if db.engine.dialect.name == "sqlite":
        return [f"CREATE TRIGGER rpc_refuse BEFORE INSERT ON accounts WHEN NEW.name = '{name}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"]
    return ["CREATE FUNCTION rpc_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.name = '{name}' THEN RAISE EXCEPTION 'refused by trigger'; END IF; "
            "RETURN NEW; END $$",
            "CREATE TRIGGER rpc_refuse BEFORE INSERT ON accounts FOR EACH ROW "
            "EXECUTE FUNCTION rpc_refuse()"]


def drop_refusal(db):
    if db.engine.dialect.name == "sqlite":
        return ["DROP TRIGGER IF EXISTS rpc_refuse"]
    return ["DROP TRIGGER IF EXISTS rpc_refuse ON accounts", "DROP FUNCTION IF EXISTS rpc_refuse()"]

