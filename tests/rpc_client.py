"""A JSON-RPC client for the tests: jsonrpcclient builds requests and parses responses, requests
carries them over real HTTP to the live server."""
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
