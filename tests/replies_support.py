"""A local HTTP server that stands in for a provider's REST API in reply tests.

``FakeAPI`` records every request (method, path, headers, JSON body) and answers from a
script: ``api.answer(path_suffix, status, body=None, headers=None, times=1)`` queues an
answer for requests whose path ends with ``path_suffix``; anything unscripted gets 201 with
``{"id": 1, "html_url": ...}`` (Slack's path gets ``{"ok": true, "ts": ...}``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class FakeAPI:
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.script: list[list] = []  # [suffix, status, body, headers, times]
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                api.requests.append(Seen("POST", self.path, dict(self.headers), body))
                status, answer, headers = api._answer(self.path)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, suffix: str, status: int, body: Any = None, headers: dict | None = None,
               times: int = 1) -> None:  # fmt: skip
        self.script.append([suffix, status, body, headers or {}, times])

    def _answer(self, path: str) -> tuple[int, Any, dict]:
        for entry in self.script:
            suffix, status, body, headers, times = entry
            if times > 0 and path.split("?")[0].endswith(suffix):
                entry[4] -= 1
                return status, body if body is not None else {}, headers
        if path.endswith("chat.postMessage"):
            return 200, {"ok": True, "channel": "C1", "ts": "1700000000.000200"}, {}
        return 201, {"id": 1, "html_url": f"https://example.test{path}#answer"}, {}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
