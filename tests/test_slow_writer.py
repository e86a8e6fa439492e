"""A slow LLM never delays ingest or another engineer's click (issue 7, item 3).

A local chat-completions server answers after ``CASEHOOK_SLOW_WRITER_SECONDS`` (default 5;
the issue's scenario is 20). While an engineer's branch note and an escalation wait on it —
their tasks run in worker threads calling ``run_due``, as a worker process would — a signed
webhook delivery must answer 202 and another engineer's note must be stored, each within
1 s, on SQLite (one write lock for everybody: the case that broke) and on Postgres. The
note and the escalation themselves answer at once: the writer is never called inside a
request or under a row lock.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app import clock
from app.branches.models import Branch
from app.branches.service import ensure_root
from app.extensions import db
from app.handoffs.models import Handoff
from app.tasks import Task, run_due
from tests.conftest import BOTH_DATABASES, GitHubSender, add_case, fixture_payload
from tests.test_writers import ChatServer

DELAY = float(os.environ.get("CASEHOOK_SLOW_WRITER_SECONDS", "5"))
#: What "at once" means for a request while the writer works (seconds).
PROMPT = 1.0


class SlowChatServer:
    """``/v1/chat/completions`` on 127.0.0.1 (random port) answering after ``delay`` seconds
    (the answers of ``tests.test_writers.ChatServer``). ``busy`` is set while a request
    waits; ``served`` counts the answers."""

    def __init__(self, delay: float) -> None:
        self.delay, self.served = delay, 0
        self.busy = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                task = re.search(r"Task \((\w+)\)", body["messages"][-1]["content"]).group(1)
                server.busy.set()
                time.sleep(server.delay)
                answer = {
                    "model": "slow-model",
                    "choices": [{"message": {"role": "assistant",
                                             "content": ChatServer.answer(task, "ok")}}],
                }  # fmt: skip
                payload = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                server.served += 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Workers:
    """``count`` threads calling ``run_due`` in their own app context until stopped."""

    def __init__(self, app, count: int = 3) -> None:
        self.app, self.stop, self.errors = app, threading.Event(), []
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                with self.app.app_context():
                    run_due()
            except Exception as exc:  # reported by the test, not swallowed
                self.errors.append(exc)
            self.stop.wait(0.05)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=DELAY * 3 + 10)


def timed(call):
    """``(response, seconds)``."""
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


@pytest.fixture
def slow_llm(app):
    server = SlowChatServer(DELAY)
    app.config.update(
        LLM_BASE_URL=server.url, LLM_MODEL="slow-model", LLM_TIMEOUT_SECONDS=DELAY + 20
    )
    yield server
    server.close()


@BOTH_DATABASES
def test_a_slow_llm_delays_neither_ingest_nor_other_engineers(app, api_token, slow_llm):
    ann = {"Authorization": f"Bearer {api_token('engineer')}"}
    bob = {"Authorization": f"Bearer {api_token('admin')}"}  # another engineer (an admin)
    with app.app_context():
        case = add_case("Checkout returns 502 after the deploy", "open", clock.now())
        ensure_root(case)
        db.session.commit()
        case_id = case.id
    github = GitHubSender(app, app.test_client())
    api = app.test_client()
    root = api.get(f"/api/cases/{case_id}/branches", headers=ann).json["tree"]["id"]
    notes = f"/api/cases/{case_id}/branches/{root}/notes"

    # Ann's note and escalation go in from their own threads (as two browser tabs would),
    # while the workers pick up what they ask for.
    answers: dict[str, tuple] = {}

    def ann_clicks() -> None:
        client = app.test_client()
        answers["note"] = timed(lambda: client.post(notes, json={"text": "502s since 09:02; check the upstream"}, headers=ann))  # fmt: skip  # noqa: E501
        answers["escalate"] = timed(
            lambda: client.post(
                f"/api/cases/{case_id}/handoffs",
                json={"intent": "escalate", "notes": "needs someone with proxy access"},
                headers=ann,
            )
        )

    workers = Workers(app)
    try:
        clicks = threading.Thread(target=ann_clicks)
        clicks.start()
        assert slow_llm.busy.wait(DELAY + 10), "the writer was never asked"

        # The writer is working now. Ingest and Bob's click must not wait for it.
        delivery, ingest_seconds = timed(
            lambda: github.send("issues", fixture_payload("issues.opened"))
        )
        assert delivery.status_code == 202, delivery.get_data(as_text=True)
        assert ingest_seconds < PROMPT, f"a delivery took {ingest_seconds:.2f} s"
        bob_note, bob_seconds = timed(
            lambda: api.post(notes, json={"text": "the LB health checks pass"}, headers=bob)
        )
        assert bob_note.status_code == 201, bob_note.json
        assert bob_seconds < PROMPT, f"another engineer's note took {bob_seconds:.2f} s"

        clicks.join(timeout=DELAY * 3 + 10)
        for name in ("note", "escalate"):
            response, seconds = answers[name]
            assert response.status_code == 201, response.json
            assert seconds < PROMPT, f"Ann's {name} took {seconds:.2f} s: it waited on the writer"
        # The API says the writing is on its way.
        handoff = answers["escalate"][0].json
        assert handoff["assessment"] is None
        assert handoff["assessment_task"]["status"] in ("queued", "running")

        # Then everything is written, by the LLM, without anybody waiting on it.
        deadline = time.monotonic() + DELAY * 4 + 20
        while time.monotonic() < deadline:
            with app.app_context():
                unfinished = db.session.scalar(
                    db.select(db.func.count(Task.id)).where(Task.status.in_(("queued", "running")))
                )
                db.session.rollback()
            if not unfinished and slow_llm.served >= 3:
                break
            time.sleep(0.2)
    finally:
        workers.close()
    assert not workers.errors, workers.errors
    with app.app_context():
        assert db.session.get(Handoff, handoff["id"]).writer == "llm (slow-model)"
        assert db.session.get(Handoff, handoff["id"]).assessment["likely_cause"]
        summary = db.session.get(Branch, root).summary
        assert summary.startswith("## From the model")
    assessed = api.get(f"/api/handoffs/{handoff['id']}", headers=ann).json
    assert assessed["assessment_task"]["status"] == "succeeded"
