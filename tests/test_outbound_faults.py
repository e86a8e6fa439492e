"""A worker killed (``kill -9``) in the middle of sending a message: the message is sent
again, at least once, with the same ``webhook-id`` (issue 9). Real ``rq worker`` processes
(the Procfile's worker line), a real Redis, a SQLite file, the local receiver."""

from __future__ import annotations

import os
import threading
import uuid

import pytest
from flask_migrate import upgrade

from app import clock, create_app
from app.events.record import record_event
from app.extensions import db
from app.outbound import service
from app.outbound.models import OutboundMessage
from app.tasks import Task
from tests.conftest import add_case
from tests.faults_support import VENV_BIN, Process, format_tails, wait_until
from tests.outbound_support import Receiver
from tests.procfile import procfile_command

pytestmark = pytest.mark.slow

SECRET_KEY = "outbound-fault-secret-key"


def test_a_message_survives_its_worker_killed_mid_attempt(tmp_path, redis_url):
    database_url = f"sqlite:///{tmp_path / 'casehook.sqlite3'}"
    queue = f"outbound-faults-{uuid.uuid4().hex[:10]}"
    first_arrived, release = threading.Event(), threading.Event()
    receiver = Receiver()
    # The first request hangs until the test ends (its worker is killed meanwhile); the
    # redelivery is answered at once.
    receiver.on_request = lambda message: (
        (first_arrived.set(), release.wait(60)) if len(receiver.received) == 1 else None
    )
    receiver.start()
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "SECRET_KEY": SECRET_KEY,
            "REDIS_URL": redis_url,
            "RQ_QUEUE": queue,
            "OUTBOUND_ALLOW": "127.0.0.1",
        }
    )
    with app.app_context():
        upgrade()
        subscription, secret = service.create_subscription(
            {"url": receiver.url(), "event_types": ["case.*"]}
        )
        receiver.secrets.append(secret)
        case = add_case("Disk full", "open", clock.now())
        event_id = record_event(
            case, "case.opened", actor="tests", payload={"title": "Disk full", "event_type": None}
        ).id
        db.session.commit()  # wakes a worker through the queue
        subscription_id = subscription.id
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TEST_")},
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CASEHOOK_QUEUE": queue,
        "SECRET_KEY": SECRET_KEY,
        "CASEHOOK_OUTBOUND_ALLOW": "127.0.0.1",
        "CASEHOOK_OUTBOUND_TIMEOUT_SECONDS": "60",
        "CASEHOOK_TASK_LEASE_SECONDS": "3",
        "CASEHOOK_TASK_WAKE_STALE_SECONDS": "2",
        "CASEHOOK_SUPERVISOR_INTERVAL_SECONDS": "0.5",
        "PYTHONUNBUFFERED": "1",
    }
    command = procfile_command("worker")
    first = Process("worker1", command, env, tmp_path / "worker1.log").start()
    second = None
    try:
        assert first_arrived.wait(30), format_tails([first])
        first.kill9()  # mid-attempt: the receiver holds the request open
        second = Process("worker2", command, env, tmp_path / "worker2.log").start()
        wait_until(lambda: len(receiver.received) >= 2, 40, "the redelivery")

        def succeeded() -> bool:
            with app.app_context():
                task = db.session.scalar(
                    db.select(Task)
                    .join(OutboundMessage, OutboundMessage.task_id == Task.id)
                    .where(OutboundMessage.subscription_id == subscription_id)
                )
                return task.status == "succeeded"

        wait_until(succeeded, 20, "the message's task to succeed")
    finally:
        release.set()
        for process in (first, second):
            if process is not None and process.alive:
                process.kill9()
        receiver.stop()
    assert [r.headers["webhook-id"] for r in receiver.received[:2]] == [event_id, event_id]
    assert all(r.verified for r in receiver.received)
    with app.app_context():
        [(attempts, message_task)] = [
            (task.attempt_log, task)
            for task in db.session.scalars(
                db.select(Task).join(OutboundMessage, OutboundMessage.task_id == Task.id)
            )
        ]
        outcomes = [a.outcome for a in attempts]
        assert outcomes[0] == "lost" and outcomes[-1] == "succeeded", outcomes
        assert message_task.attempts == len(attempts)
        db.session.remove()
        db.engine.dispose()
