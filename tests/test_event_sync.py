"""Sync to a local HTTP receiver: batches, pacing, backoff, 401, crashes, status."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app import clock
from app.cases.models import Case
from app.events import sync
from app.events.models import CaseEvent
from app.events.record import record_event
from app.extensions import db
from app.tasks.models import QUEUED, RUNNING, Task
from tests.conftest import BOTH_DATABASES, add_case

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Receiver:
    """A local sync target: records each POST; answers with ``statuses`` in turn (then
    200); while ``hold`` is clear it keeps the request waiting."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.requests.append({"auth": self.headers.get("Authorization"), **body})
                receiver.arrived.set()
                receiver.hold.wait(30)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ids(self) -> list[str]:
        return [event["id"] for request in self.requests for event in request["events"]]


@pytest.fixture
def receiver(app):
    receiver = Receiver()
    app.config.update(SYNC_URL=receiver.url, SYNC_TOKEN="tok")
    yield receiver
    receiver.hold.set()
    receiver.server.shutdown()


def write_events(app, count: int) -> list[str]:
    """``count`` events on a new case, committed; their ids in order."""
    with app.app_context():
        case = add_case("sync", "open", T0)
        events = [
            record_event(case, "case.tagged", payload={"tags": [], "added": [], "removed": []})
            for _ in range(count)
        ]
        db.session.commit()
        return [event.id for event in events]


def test_batches_hold_at_most_1000_events_in_order_and_one_goes_per_5_seconds(app, receiver):
    ids = write_events(app, 2500)
    with app.app_context():
        node = sync.node_clock.node_id()
        outcomes = []
        for seconds in (0, 0, 4.9, 5, 9.9, 10, 15):
            with clock.frozen_at(T0 + timedelta(seconds=seconds)):
                outcomes.append((seconds, sync.send_batch()["outcome"]))
    assert outcomes == [(0, "sent"), (0, "not due"), (4.9, "not due"), (5, "sent"),
                        (9.9, "not due"), (10, "sent"), (15, "nothing")]  # fmt: skip
    assert [len(r["events"]) for r in receiver.requests] == [1000, 1000, 500]
    assert receiver.ids() == ids  # in order, none twice, none missing
    assert {r["node_id"] for r in receiver.requests} == {node}
    assert {r["auth"] for r in receiver.requests} == {"Bearer tok"}
    seqs = [e["seq"] for r in receiver.requests for e in r["events"]]
    assert seqs == sorted(seqs)
    with app.app_context():
        assert sync.status()["cursor"] == ids[-1] and sync.status()["pending"] == 0


def test_failures_back_off_exponentially_from_half_a_second_to_30_seconds(app, receiver):
    write_events(app, 3)
    receiver.statuses = [503] * 10
    sync.rng = random.Random(7)
    delays = []
    with app.app_context():
        now = T0
        for _ in range(10):
            with clock.frozen_at(now):
                result = sync.send_batch()
                assert result["outcome"] == "failed" and "503" in result["error"]
                state = sync.load_state()
                due = sync._aware(state.next_attempt_at)
            delays.append((due - now).total_seconds())
            with clock.frozen_at(due - timedelta(milliseconds=1)):
                assert sync.send_batch()["outcome"] == "not due"
            now = due
        with clock.frozen_at(now):
            assert sync.send_batch()["outcome"] == "sent"  # the receiver is back
            state = sync.load_state()
            assert state.failures == 0 and state.last_success_at is not None
            assert sync._aware(state.next_attempt_at) == now + timedelta(seconds=5)
    for n, delay in enumerate(delays, start=1):
        base = min(30.0, 0.5 * 2 ** (n - 1))
        assert base <= delay <= min(30.0, base * 1.25), (n, delay)
    assert delays[-1] == 30.0 and len(set(delays[:6])) == 6  # capped; jittered and growing
    assert len(receiver.requests) == 11


def test_a_401_is_an_auth_problem_and_is_not_retried_until_the_config_changes(app, receiver):
    ids = write_events(app, 2)
    receiver.statuses = [401]
    with app.app_context():
        with clock.frozen_at(T0):
            assert sync.send_batch()["outcome"] == "unauthorized"
        status = sync.status()
        assert status["auth_blocked"] is True and status["next_attempt_at"] is None
        assert "401" in status["last_error"] and status["cursor"] is None
        with clock.frozen_at(T0 + timedelta(hours=1)):
            assert sync.send_batch()["outcome"] == "blocked"
            assert sync.schedule() == 0
        assert db.session.scalar(db.select(db.func.count()).select_from(Task)) == 0
        assert len(receiver.requests) == 1
        app.config["SYNC_TOKEN"] = "new-token"  # an operator fixed it
        with clock.frozen_at(T0 + timedelta(hours=1)):
            assert sync.send_batch()["outcome"] == "sent"
        assert sync.status()["auth_blocked"] is False
    assert receiver.requests[-1]["auth"] == "Bearer new-token"
    assert receiver.ids() == ids + ids


WORKER = """
import json, sys
from app import create_app
from app.tasks.runner import run_task
app = create_app(json.loads(sys.argv[1]))
with app.app_context():
    print(run_task(sys.argv[2]))
"""


@BOTH_DATABASES
def test_a_worker_killed_mid_batch_leaves_the_cursor_and_only_that_batch_is_sent_again(
    app, receiver
):
    ids = write_events(app, 12)
    app.config.update(SYNC_BATCH_SIZE=5, TASK_LEASE_SECONDS=1)
    with app.app_context():
        assert sync.schedule() == 1
        task_id = db.session.scalar(db.select(Task.id).where(Task.kind == sync.KIND))
    receiver.hold.clear()  # the first request waits: the worker is killed meanwhile
    config = {key: app.config[key] for key in ("SQLALCHEMY_DATABASE_URI", "REDIS_URL",
              "SECRET_KEY", "SYNC_URL", "SYNC_TOKEN", "SYNC_BATCH_SIZE",
              "TASK_LEASE_SECONDS", "RQ_QUEUE")}  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps({**config, "TESTING": True}), task_id],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert receiver.arrived.wait(60), "the worker never sent"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    receiver.hold.set()
    with app.app_context():
        assert sync.status()["cursor"] is None  # nothing acknowledged
        assert db.session.get(Task, task_id).status == RUNNING
        db.session.commit()
        time.sleep(1.2)  # the lease runs out
        from app.tasks.runner import run_due
        from app.tasks.supervisor import recover_lost_tasks

        assert recover_lost_tasks() == 1
        assert db.session.get(Task, task_id).status == QUEUED
        db.session.commit()
        assert run_due() == 1  # the same task, again: the same batch
        assert sync.status()["cursor"] == ids[4]
        for step in (1, 2):
            with clock.frozen_at(clock.now() + timedelta(seconds=5 * step + 1)):
                assert sync.send_batch()["outcome"] == "sent"
        assert sync.status()["cursor"] == ids[-1] and sync.status()["pending"] == 0
    assert receiver.ids() == ids[:5] + ids  # only the batch in flight went twice


def test_the_supervisor_queues_a_batch_task_and_a_worker_sends_it(app, receiver):
    ids = write_events(app, 3)
    from app.tasks.runner import run_due
    from app.tasks.supervisor import Supervisor

    with app.app_context():
        assert Supervisor().tick()["sync"] == 1
        assert sync.schedule() == 0  # one at a time
        assert run_due() == 1
        assert receiver.ids() == ids
        assert sync.schedule() == 0  # nothing pending
        assert db.session.scalar(db.select(Task.status).where(Task.kind == sync.KIND)) == (
            "succeeded"
        )


def test_sync_status_and_now_on_the_command_line_and_the_admin_page(app, runner, client):
    runner_off = runner.invoke(args=["sync", "status"])
    assert "Event sync is off" in runner_off.output
    receiver = Receiver()
    try:
        app.config.update(SYNC_URL=receiver.url, SYNC_TOKEN=None)
        ids = write_events(app, 3)
        status = json.loads(runner.invoke(args=["sync", "status", "--json"]).output)
        assert {k: status[k] for k in ("pending", "cursor", "last_success_at", "last_error",
                                       "last_error_at")} == {
            "pending": 3, "cursor": None, "last_success_at": None, "last_error": None,
            "last_error_at": None,
        }  # fmt: skip
        assert "next_attempt_at" in status
        sent = runner.invoke(args=["sync", "now"])
        assert sent.exit_code == 0 and json.loads(sent.output)["outcome"] == "sent"
        assert receiver.requests[0]["auth"] is None
        status = json.loads(runner.invoke(args=["sync", "status", "--json"]).output)
        assert status["pending"] == 0 and status["cursor"] == ids[-1]
        assert status["last_success_at"] and status["next_attempt_at"]
        text = runner.invoke(args=["sync", "status"]).output
        assert "Event sync: 0 events pending; last success" in text
        assert f"cursor: {ids[-1]}" in text
        receiver.statuses = [500]
        write_events(app, 1)
        failed = runner.invoke(args=["sync", "now"])
        assert failed.exit_code == 1 and json.loads(failed.output)["outcome"] == "failed"
        page = client.get("/admin/users").get_data(as_text=True)
        assert "Event sync: 1 events pending" in page and "HTTP 500" in page
    finally:
        receiver.server.shutdown()


def test_events_of_a_case_arrive_with_their_clock_and_correlation(app, receiver):
    write_events(app, 1)
    with app.app_context():
        sync.send_batch()
        event = db.session.scalar(db.select(CaseEvent))
        sent = receiver.requests[0]["events"][0]
        assert sent == json.loads(json.dumps(event.to_dict()))
        assert sent["lamport"] >= 1 and sent["correlation_id"]
        assert db.session.get(Case, event.case_id) is not None
