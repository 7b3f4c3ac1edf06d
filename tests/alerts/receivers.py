"""Real receivers on loopback for the alert tests: an HTTP server that answers from a script,
and an SMTP server (aiosmtpd)."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from aiosmtpd.controller import Controller

from ..servers import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)

    def json(self):
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


def slack_shape_problem(body: dict) -> str | None:
    """What Slack would refuse in an incoming-webhook body (the subset we use), or None."""
    if not isinstance(body.get("text"), str) or not body["text"]:
        return "text: a non-empty fallback string is required"
    blocks = body.get("blocks")
    if not isinstance(blocks, list) or not 0 < len(blocks) <= 50:
        return "blocks: a list of 1 to 50 blocks"
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "section":
            if "text" not in block and "fields" not in block:
                return f"blocks[{i}]: a section needs text or fields"
            texts = [block["text"]] if "text" in block else []
            texts += block.get("fields", [])
            if len(block.get("fields", [])) > 10:
                return f"blocks[{i}].fields: at most 10"
        elif kind == "context":
            texts = block.get("elements", [])
        elif kind == "header":
            texts = [block.get("text", {})]
            if texts[0].get("type") != "plain_text":
                return f"blocks[{i}]: a header's text is plain_text"
        else:
            return f"blocks[{i}]: unexpected block type {kind!r}"
        for text in texts:
            if text.get("type") not in ("mrkdwn", "plain_text") or not text.get("text"):
                return f"blocks[{i}]: a text object needs a type and non-empty text"
    return None


class HttpReceiver:
    """Answers POSTs from `script` (then `default`), keeping every request it received."""

    def __init__(self, check: Callable[[Received], str | None] | None = None,
                 port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[Received] = []
        self.script: list[Answer] = []
        self.default = Answer()
        self.check = check
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> "HttpReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver.lock:
                    receiver.received.append(got)
                    answer = receiver.script.pop(0) if receiver.script else receiver.default
                problem = receiver.check(got) if receiver.check else None
                if problem:
                    answer = Answer(400, body=problem.encode())
                time.sleep(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class SmtpReceiver:
    """aiosmtpd on loopback, keeping each message it accepted."""

    def __init__(self):
        self.messages: list = []
        self.port = free_port()

        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                receiver.messages.append(envelope)
                return "250 Message accepted for delivery"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"
