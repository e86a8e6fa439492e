"""A local receiver for outbound webhook tests: a real HTTP server on 127.0.0.1 that
verifies every message with the ``standardwebhooks`` package and answers as scripted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

#: An answer: (status, headers, body) or a callable taking the received message.
Answer = tuple[int, dict, bytes]


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    verified: bool
    at: float

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """``script[path]``: a list of answers used in turn (the last one repeats); ``delay``
    per path in seconds. ``secrets``: the secrets a message may be signed with."""

    secrets: list[str] = field(default_factory=list)
    script: dict[str, list[Answer]] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    on_request: Callable[[Received], None] | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm
            # and the sender's delayed ACK add 40 ms to every keep-alive request.
            disable_nagle_algorithm = True

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                message = Received(
                    self.path, headers, body, receiver.verify(headers, body), time.monotonic()
                )
                receiver.received.append(message)
                if receiver.on_request:
                    receiver.on_request(message)
                time.sleep(receiver.delay.get(self.path, 0))
                answers = receiver.script.get(self.path) or [(200, {}, b"ok")]
                status, extra, reply = answers.pop(0) if len(answers) > 1 else answers[0]
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the sender gave up (timeout)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def verify(self, headers: dict, body: bytes) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True
            except WebhookVerificationError:
                continue
        return False

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
