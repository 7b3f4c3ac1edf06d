"""Run the app under gunicorn from the `correlated serve` command."""
from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from flask import Flask
from gunicorn.app.base import BaseApplication

from . import config

# Access lines without the query string (%(r)s, %(q)s) and the Basic user (%(u)s): both can
# carry an API key (?token=, ?census_authentication=, Segment's write key).
ACCESS_LOG_FORMAT = '%(h)s - - %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'


class _Server(BaseApplication):
    def __init__(self, options: dict, factory: Callable[[], Flask]):
        self.options = options
        self.factory = factory
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        # Each worker builds its own app (and database connections) after the fork.
        return self.factory()


# Each connection is a greenlet, not a process or thread: a client trickling its headers or
# body (slowloris) holds a few kilobytes, not the worker, so /healthz and the API keep
# answering. Up to WORKER_CONNECTIONS per worker; a production proxy adds timeouts and
# buffering in front (docs/operations.md).
WORKER_CLASS = "gevent"
WORKER_CONNECTIONS = 1000


def server_options(bind: str, workers: int) -> dict:
    """gunicorn's settings for `correlated serve`."""
    return {"bind": bind, "workers": workers, "worker_class": WORKER_CLASS,
            "worker_connections": WORKER_CONNECTIONS, "accesslog": "-", "timeout": 120,
            "graceful_timeout": 20, "access_log_format": ACCESS_LOG_FORMAT,
            "raw_env": [f"CORRELATED_SERVER_WORKERS={workers}"]}


def run_gunicorn(bind: str, workers: int, factory: Callable[[], Flask]) -> None:
    """Serve the apps `factory` builds, one per worker."""
    _Server({**server_options(bind, workers), **metrics_hooks(workers)}, factory).run()


def metrics_hooks(workers: int) -> dict:
    """gunicorn hooks for prometheus_client's multiprocess mode (see docs/operations.md)."""
    folder = config.setting("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        if workers > 1:
            print("note: /metrics counts per worker; set PROMETHEUS_MULTIPROC_DIR to an empty "
                  "directory to sum every worker", file=sys.stderr)
        return {}

    def on_starting(_arbiter) -> None:
        # Files of a previous run would be summed with this one's; counters restart at zero.
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()

    def child_exit(_arbiter, worker) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, folder)

    return {"on_starting": on_starting, "child_exit": child_exit}


@contextmanager
def background_worker() -> Iterator[subprocess.Popen]:
    """`correlated worker` as a child process for as long as the block runs (`serve`)."""
    process = subprocess.Popen([sys.executable, "-m", "correlated", "worker"])
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
