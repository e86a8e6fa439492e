"""Slow clients cannot block ingest: the Procfile's real web line (gunicorn) keeps answering
signed deliveries within 1 s while several connections sit half-open.

With two sync workers, two stalled requests used to hold both workers until gunicorn's
30 s timeout, and GitHub gives up after 10 s.
"""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
import pytest

from app.extensions import db
from app.webhooks.models import Delivery
from tests.conftest import GITHUB_FIXTURES
from tests.procfile import procfile_web

#: Three times the two sync workers of old, and fewer than one gthread worker's threads
#: (a worker's stalled connections each hold one of its threads; see README, "Deploying").
STALLED = 6


def _stall(url: str, what: str) -> socket.socket:
    """A connection to the server that says ``what`` (nothing, a partial request line and
    headers, or complete headers and a partial body) and then says no more."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    if what == "headers":
        sock.sendall(b"POST /webhooks/github/x HTTP/1.1\r\nHost: casehook\r\nX-GitHub-")
    elif what == "body":
        sock.sendall(
            b"POST /webhooks/github/x HTTP/1.1\r\nHost: casehook\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"action": '
        )
    return sock


def test_half_open_connections_do_not_delay_a_signed_delivery(app, github, tmp_path):
    env = {
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app.config["REDIS_URL"],
        "CASEHOOK_QUEUE": app.config["RQ_QUEUE"],
        "SECRET_KEY": app.config["SECRET_KEY"],  # decrypts the endpoint's secret
        "WEB_CONCURRENCY": "2",
    }
    body = (GITHUB_FIXTURES / "issues.opened.json").read_bytes()
    with procfile_web(env, tmp_path / "web.log") as url, contextlib.ExitStack() as stack:
        kinds = ["nothing", "headers", "body"]
        for i in range(STALLED):
            stack.enter_context(_stall(url, kinds[i % len(kinds)]))
        time.sleep(0.5)  # let the server accept them and read what they sent

        delivery_ids = []
        for _ in range(4):  # fresh connections: each may land on either worker
            headers = github.headers("issues", body)
            started = time.monotonic()
            try:
                response = httpx.post(url + github.path, content=body, headers=headers, timeout=5)
            except httpx.TimeoutException:
                pytest.fail(f"no answer within 5 s with {STALLED} connections stalled")
            elapsed = time.monotonic() - started
            assert response.status_code == 202, response.text
            assert elapsed < 1.0, f"answered after {elapsed:.2f} s"
            delivery_ids.append(headers["X-GitHub-Delivery"])

    with app.app_context():
        stored = db.session.scalars(
            db.select(Delivery.delivery_id).where(Delivery.delivery_id.in_(delivery_ids))
        ).all()
    assert sorted(stored) == sorted(delivery_ids)
