"""correlated under a real gunicorn on a loopback port, for tests that kill and restart it."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 60, process: subprocess.Popen | None = None) -> bool:
    """Until `url` answers 200 (a worker's first request imports pandas: read timeouts too)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return True
        except requests.RequestException:
            time.sleep(0.1)
    return False


class Gunicorn:
    """`gunicorn -w N wsgi:app` against `database_url`; start, kill -9 workers or all, restart."""

    def __init__(self, database_url: str, folder: Path, workers: int = 2,
                 args: tuple[str, ...] = (), **env: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.args = args
        self.log = folder / "gunicorn.log"
        self.env = {**os.environ, "CORRELATED_DATABASE_URL": database_url,
                    "CORRELATED_SECRET_KEY": "gunicorn-test", **env}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        # No control socket: parallel test runs would all claim ~/.gunicorn/gunicorn.ctl.
        command = [str(BIN / "gunicorn"), "-w", str(self.workers), "-b",
                   f"127.0.0.1:{self.port}", "--graceful-timeout", "2", "--no-control-socket",
                   *self.args, "wsgi:app"]
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_for(self.base + "/healthz", timeout, self.process):
            self.kill_all()
            raise AssertionError("gunicorn did not start:\n" + self.log.read_text()[-3000:])

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except FileNotFoundError:
            return []

    def kill_worker(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def kill_all(self) -> None:
        """kill -9 the whole server: master and workers, no shutdown of any kind."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill_all()
        self.process = None
