"""The worker process (``app/worker.py``): it outlives a Redis restart, and stops when asked."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid

import pytest
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from app.webhooks.cli import create_endpoint
from app.webhooks.models import Delivery
from tests.conftest import GITHUB_FIXTURES
from tests.faults_support import (
    Process,
    redis_answers,
    redis_server_binary,
    wait_until,
    worker_registered,
)
from tests.procfile import free_port, procfile_command

pytestmark = pytest.mark.slow


@pytest.fixture
def rig(tmp_path):
    """A migrated SQLite file, a redis-server of our own and the Procfile's worker line."""
    database_url = f"sqlite:///{tmp_path / 'casehook.sqlite3'}"
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "worker-test"})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    env = {
        **os.environ,
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "worker-test",
        "CASEHOOK_QUEUE": f"worker-{uuid.uuid4().hex[:8]}",
        "CASEHOOK_SUPERVISOR_INTERVAL_SECONDS": "0.5",
        "CASEHOOK_SWEEP_AFTER_SECONDS": "1",
    }
    redis_command = (
        f"{redis_server_binary()} --port {port} --bind 127.0.0.1"
        f' --save "" --appendonly no --dir {tmp_path}'
    )
    redis = Process("redis", redis_command, env, tmp_path / "redis.log").start()
    worker = Process("worker", procfile_command("worker"), env, tmp_path / "worker.log")
    wait_until(lambda: redis_answers(redis_url), 10, "redis-server")
    worker.start()
    wait_until(lambda: worker_registered(redis_url, worker.pid), 90, "worker")
    yield redis, worker, redis_url, app
    for process in (worker, redis):
        process.kill9()


def _stored_delivery(app) -> str:
    """A GitHub delivery as ingest stores it (``received``), woken by nobody."""
    with app.app_context():
        endpoint, _ = create_endpoint("github", "Codertocat/Hello-World")
        body = (GITHUB_FIXTURES / "issues.opened.json").read_bytes()
        delivery = Delivery(endpoint_id=endpoint.id, delivery_id=str(uuid.uuid4()),
                            event_type="issues.opened", body=body,
                            headers={"X-GitHub-Event": "issues"})  # fmt: skip
        db.session.add(delivery)
        db.session.commit()
        return delivery.id


def _status(app, delivery_pk: str) -> str:
    with app.app_context():
        status = db.session.get(Delivery, delivery_pk).status
        db.session.remove()
        return status


def test_the_worker_outlives_a_redis_restart_and_stops_on_sigterm(rig):
    redis, worker, redis_url, app = rig
    redis.kill9()
    time.sleep(3)  # the worker notices: its loop fails, it waits and starts over
    assert worker.alive, worker.tail()
    delivery_pk = _stored_delivery(app)  # acknowledged while Redis was down
    redis.start()
    wait_until(lambda: redis_answers(redis_url), 10, "redis-server")
    # Redis came back empty; the worker's supervisor finds the delivery and it is processed.
    wait_until(lambda: _status(app, delivery_pk) == "processed", 30, "the delivery")
    assert worker.alive

    before_stop = worker.log_path.stat().st_size
    os.killpg(worker.pid, signal.SIGTERM)
    worker.popen.wait(15)  # a stop request ends it: no restart, no SIGKILL needed
    assert worker.popen.returncode == 0, worker.tail()
    after_stop = worker.log_path.read_text(errors="replace")[before_stop:]
    assert "worker.restarted" not in after_stop, after_stop
