"""Slow clients (issue #13, 14): `correlated serve` keeps answering /healthz and the API within
a second while 50 connections trickle their headers or bodies, each from a thread of its own.

Before: gunicorn's sync workers, one connection each; 4 trickling clients hung /healthz.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Iterator

import pytest
import requests

from .servers import free_port, wait_for
from .test_cli import _read_until

SLOW_HEADERS = 40
SLOW_BODIES = 10
TRICKLE_SECONDS = 0.5


@pytest.fixture
def served(database_url, tmp_path) -> Iterator[tuple[str, str]]:
    """`correlated serve --workers 2` as the README starts it; yields (base URL, API key)."""
    port = free_port()
    env = {**os.environ, "CORRELATED_DATABASE_URL": database_url,
           "CORRELATED_SECRET_KEY": "slow-test", "CORRELATED_REQUEST_LOG": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "correlated", "serve", "--port", str(port), "--workers", "2"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        key = re.search(r"API key:\s+(cor_\S+)", _read_until(process, "API key:")).group(1)
        base = f"http://127.0.0.1:{port}"
        assert wait_for(base + "/healthz", process=process)
        yield base, key
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=30)


def trickle(port: int, opening: bytes, drip: bytes, stop: threading.Event,
            connected: threading.Barrier) -> None:
    """Open a connection, send `opening`, then one `drip` per TRICKLE_SECONDS until `stop`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(opening)
        connected.wait(10)
        while not stop.wait(TRICKLE_SECONDS):
            try:
                sock.sendall(drip)
            except OSError:
                return  # the server may close a connection it finds too slow: allowed


def timed(call) -> float:
    started = time.perf_counter()
    response = call()
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


def test_fifty_slow_clients_do_not_stop_the_server(served):
    base, key = served
    port = int(base.rsplit(":", 1)[1])
    auth = {"Authorization": f"Bearer {key}"}
    headers = b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n"
    body = (b"POST /api/v1/accounts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + key.encode() + b"\r\nContent-Type: application/json\r\n"
            + b"Content-Length: 100000\r\n\r\n[", b" ")
    stop, connected = threading.Event(), threading.Barrier(SLOW_HEADERS + SLOW_BODIES + 1)
    threads = [threading.Thread(target=trickle, args=(port, *shape, stop, connected),
                                daemon=True)
               for shape in [headers] * SLOW_HEADERS + [body] * SLOW_BODIES]
    for thread in threads:
        thread.start()
    try:
        connected.wait(10)  # every slow client has its connection open
        time.sleep(2 * TRICKLE_SECONDS)  # and has trickled a little
        session = requests.Session()
        durations = [timed(lambda: session.get(base + "/healthz", timeout=5)) for _ in range(10)]
        durations.append(timed(lambda: requests.post(
            base + "/api/v1/accounts", json=[{"account_id": "a1", "name": "Acme"}],
            headers=auth, timeout=5)))
        durations.append(timed(lambda: requests.get(base + "/api/v1/accounts", headers=auth,
                                                    timeout=5)))
        assert sum(thread.is_alive() for thread in threads) == len(threads)  # still held open
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    assert max(durations) < 1.0, durations
