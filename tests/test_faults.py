"""Fault injection against the real Procfile processes (issue 7, "Nothing lost").

The ``web:`` line (gunicorn, two workers) and two ``worker:`` lines run as subprocesses over
a SQLite file or Postgres and a ``redis-server`` of the test's own. Three senders post signed
GitHub deliveries, posting a delivery again with the same id after a connection error or a
5xx, as GitHub's redelivery does. Meanwhile RQ workers are ``kill -9``-ed and restarted,
Redis is killed and restarted empty (twice; the second time the senders stop while it is
down, so only the supervisor can find what was acknowledged meanwhile), and gunicorn is
killed with its workers and restarted.

Then, with no operator action, every acknowledged delivery must be stored once, processed,
and have exactly one case event (``case_events.causation_id == deliveries.id``): every
delivery here matches a built-in command that writes one event (issues.opened on a new
issue opens a case; issue_comment.created and issues.edited on an open case update it).
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter

import pytest
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from app import create_app
from app.config import normalise_database_url
from app.extensions import db
from app.webhooks.cli import create_endpoint
from tests.conftest import BOTH_DATABASES
from tests.faults_support import (
    VENV_BIN,
    Process,
    Sender,
    format_tails,
    make_delivery,
    redis_answers,
    redis_server_binary,
    stop_all,
    wait_until,
    web_answers,
    worker_registered,
)
from tests.procfile import free_port, procfile_command

pytestmark = pytest.mark.slow

SECRET_KEY = "fault-test-secret-key"
REPO_NAME = "Codertocat/Hello-World"
SENDERS = 3
PER_SENDER = 400  # an upper bound: senders stop when the faults end
PACE = 0.04  # seconds between one sender's deliveries
SHARED_ISSUES = (9001, 9002, 9003, 9004)  # comments and edits land on these open cases
DEADLINE = 90  # seconds after the faults end to wait for every delivery to be processed
PROMISE = 60  # the issue's bound (seconds after the fault ends)

ENV = {
    "SECRET_KEY": SECRET_KEY,
    "WEB_CONCURRENCY": "2",
    "CASEHOOK_SUPERVISOR_INTERVAL_SECONDS": "1",
    "CASEHOOK_SWEEP_AFTER_SECONDS": "3",
    "CASEHOOK_INBOX_LEASE_SECONDS": "6",
    "CASEHOOK_TASK_LEASE_SECONDS": "6",
    "PYTHONUNBUFFERED": "1",
}


def prepare_database(url: str) -> tuple[str, str]:
    """Migrate (SQLite) or empty (Postgres, migrated by ``postgres_url``) the database and
    create a GitHub endpoint; returns its path and secret."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET_KEY})
    with app.app_context():
        if url.startswith("sqlite"):
            upgrade()
        else:
            tables = ", ".join(t.name for t in db.metadata.sorted_tables)
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()
        endpoint, secret = create_endpoint("github", REPO_NAME)
        path = endpoint.path
        db.session.remove()
        db.engine.dispose()
    return path, secret


def plan(sender: int, rng: random.Random) -> list:
    """``PER_SENDER`` deliveries: most open a new issue (a new case each), the rest comment
    on or edit one of the shared, already open issues."""
    deliveries = []
    for i in range(PER_SENDER):
        roll = rng.random()
        if roll < 0.6:
            deliveries.append(make_delivery("issues.opened", 10_000 * (sender + 1) + i, ""))
        elif roll < 0.85:
            number = rng.choice(SHARED_ISSUES)
            deliveries.append(make_delivery("issue_comment.created", number, f"{sender}-{i}"))
        else:
            deliveries.append(make_delivery("issues.edited", rng.choice(SHARED_ISSUES), ""))
    return deliveries


class Rig:
    """The Procfile's processes and a redis-server, started and killed on request."""

    def __init__(self, tmp_path, database_url: str) -> None:
        self.redis_port, self.web_port = free_port(), free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TEST_")},
            **ENV,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DATABASE_URL": database_url,
            "REDIS_URL": self.redis_url,
            "CASEHOOK_QUEUE": f"faults-{uuid.uuid4().hex[:10]}",
            "PORT": str(self.web_port),
        }
        redis_command = (
            f"{redis_server_binary()} --port {self.redis_port} --bind 127.0.0.1"
            f' --save "" --appendonly no --dir {tmp_path} --loglevel notice'
        )
        self.redis = Process("redis", redis_command, env, tmp_path / "redis.log")
        self.web = Process("web", procfile_command("web"), env, tmp_path / "web.log")
        self.workers = [
            Process(f"worker{n}", procfile_command("worker"), env, tmp_path / f"worker{n}.log")
            for n in (1, 2)
        ]
        self.processes = [self.redis, self.web, *self.workers]
        self.t0 = time.monotonic()
        #: (time.monotonic() when everything was back up, what happened)
        self.faults: list[tuple[float, str]] = []
        self.redis_back = 0.0  # time.monotonic() when Redis last came back

    def start_redis(self) -> None:
        self.redis.start()
        wait_until(lambda: redis_answers(self.redis_url), 10, "redis-server")
        self.redis_back = time.monotonic()

    def start_web(self) -> None:
        self.web.start()
        wait_until(lambda: web_answers(self.base_url), 90, "gunicorn")  # a loaded 2-core box

    def start_worker(self, worker: Process) -> None:
        worker.start()
        self.wait_worker(worker)

    def wait_worker(self, worker: Process) -> None:
        wait_until(lambda: worker_registered(self.redis_url, worker.pid), 90, worker.name)

    def start(self) -> None:
        self.start_redis()
        for worker in self.workers:
            worker.start()
        self.start_web()
        for worker in self.workers:
            self.wait_worker(worker)

    def fault(self, what: str, started: float) -> None:
        self.faults.append((time.monotonic(), what))
        print(
            f"  +{started - self.t0:5.1f}s..+{time.monotonic() - self.t0:5.1f}s {what}",
            flush=True,
        )

    def kill_worker(self, n: int) -> None:
        started, worker = time.monotonic(), self.workers[n]
        worker.kill9()
        time.sleep(0.5)
        self.start_worker(worker)
        self.fault(f"{worker.name} killed -9, restarted", started)

    def kill_web(self) -> None:
        started = time.monotonic()
        self.web.kill9()
        time.sleep(0.5)
        self.start_web()
        self.fault("gunicorn (master and workers) killed -9, restarted", started)

    def kill_redis(self, down_for: float, meanwhile=lambda: None) -> None:
        started = time.monotonic()
        self.redis.kill9()
        meanwhile()
        time.sleep(max(0.0, down_for - (time.monotonic() - started)))
        self.start_redis()
        self.fault(f"redis-server killed -9, restarted empty ({down_for}s down)", started)


def inject_faults(rig: Rig, stop_sending: threading.Event) -> None:
    """The faults, one after another, while the senders post (about 25-40 s)."""
    time.sleep(2.5)
    rig.kill_worker(0)
    time.sleep(1.5)
    rig.kill_redis(down_for=2)
    time.sleep(2)
    rig.kill_web()
    time.sleep(2)
    rig.kill_worker(1)
    rig.kill_worker(0)
    time.sleep(2)
    rig.kill_web()
    time.sleep(2)
    # Last, Redis dies and a worker with it; the senders stop while Redis is down, so what
    # was acknowledged meanwhile has no wake-up anywhere and no later delivery to carry it
    # along: only the supervisor can find it.
    started = time.monotonic()
    rig.workers[1].kill9()

    def stop_senders() -> None:
        time.sleep(1)
        stop_sending.set()

    rig.kill_redis(down_for=3, meanwhile=stop_senders)
    rig.start_worker(rig.workers[1])
    rig.fault("worker2 killed -9 with Redis, restarted after it", started)


def db_state(engine, endpoint_path: str) -> tuple[dict, Counter]:
    """``({delivery_id: [rows]}, Counter{causation_id: case events})`` of the endpoint."""
    endpoint_id = endpoint_path.rstrip("/").rsplit("/", 1)[-1]
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id, delivery_id, status, verdict, attempts, partition, outcome"
                " FROM deliveries WHERE endpoint_id = :e"
            ),
            {"e": endpoint_id},
        ).all()
        events = connection.execute(
            text(
                "SELECT causation_id, count(*) FROM case_events"
                " WHERE causation_id IS NOT NULL GROUP BY causation_id"
            )
        ).all()
    by_delivery: dict = {}
    for row in rows:
        by_delivery.setdefault(row.delivery_id, []).append(row)
    return by_delivery, Counter({c: n for c, n in events})


def wait_processed(engine, endpoint_path: str, acked: set[str]) -> float | None:
    """Poll until every acknowledged delivery is stored and every stored one processed;
    returns when (time.monotonic()), or None after ``DEADLINE`` seconds."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        rows, _events = db_state(engine, endpoint_path)
        if acked <= rows.keys() and all(
            r.status == "processed" for rs in rows.values() for r in rs
        ):
            return time.monotonic()
        time.sleep(0.5)
    return None


def find_problems(rows: dict, events: Counter, acked: set[str], results: list) -> list[str]:
    """Everything that breaks "nothing lost, nothing twice", in words."""
    problems = []
    unacked = [r for r in results if r.status is None]
    if unacked:
        problems.append(f"{len(unacked)} deliveries never acknowledged: {unacked[:3]}")
    missing = acked - rows.keys()
    if missing:
        problems.append(f"{len(missing)} acknowledged deliveries not stored (lost): {missing}")
    twice = {d: len(rs) for d, rs in rows.items() if len(rs) != 1}
    if twice:
        problems.append(f"{len(twice)} delivery ids stored more than once: {twice}")
    stored = [r for rs in rows.values() for r in rs]
    stuck = [r for r in stored if r.status != "processed"]
    if stuck:
        statuses = Counter(r.status for r in stored)
        partitions = Counter(r.partition for r in stuck)
        problems.append(
            f"{len(stuck)} deliveries not processed ({dict(statuses)}), by partition "
            f"{dict(sorted(partitions.items()))}; e.g. {[tuple(r) for r in stuck[:3]]}"
        )
    processed = [r for r in stored if r.status == "processed"]
    no_event = [r for r in processed if events[r.id] == 0]
    if no_event:
        problems.append(
            f"{len(no_event)} processed deliveries have no case event: "
            f"{[(r.delivery_id, r.outcome) for r in no_event[:3]]}"
        )
    extra = [r for r in processed if events[r.id] > 1]
    if extra:
        problems.append(
            f"{len(extra)} deliveries have more than one case event (processed twice): "
            f"{[(r.delivery_id, events[r.id], r.outcome) for r in extra[:3]]}"
        )
    return problems


def report_sending(results: list) -> None:
    acked = [r for r in results if r.status in (200, 202)]
    server_errors = [e for r in results for e in r.errors if e[:1] == "5"]
    print(
        f"\n  sent {len(results)} deliveries, {len(acked)} acknowledged "
        f"({sum(r.status == 200 for r in acked)} as duplicates after a lost answer), "
        f"{sum(1 for r in results if r.errors)} needed retries, "
        f"{len(server_errors)} answers were 5xx {server_errors[:3]}, "
        f"slowest acknowledgement {max(r.seconds for r in results):.1f}s"
    )


@BOTH_DATABASES
def test_nothing_lost_nothing_twice_under_faults(database_url, tmp_path):
    endpoint_path, secret = prepare_database(database_url)
    rig = Rig(tmp_path, database_url)
    engine = create_engine(normalise_database_url(database_url))
    stop_sending = threading.Event()
    tails_printed = False
    try:
        rig.start()
        rng = random.Random(7)
        # The shared issues' cases are opened first, so the comments and edits update them.
        opens = [make_delivery("issues.opened", n, "") for n in SHARED_ISSUES]
        opener = Sender(rig.base_url, endpoint_path, secret, opens, 0, threading.Event())
        opener.run()
        senders = [
            Sender(rig.base_url, endpoint_path, secret, plan(n, rng), PACE, stop_sending)
            for n in range(SENDERS)
        ]
        rig.t0 = time.monotonic()
        for sender in senders:
            sender.start()
        inject_faults(rig, stop_sending)
        for sender in senders:
            sender.join(120)
        faults_over = rig.faults[-1][0]

        results = [r for s in [opener, *senders] for r in s.results]
        report_sending(results)
        acked = {r.delivery_id for r in results if r.status in (200, 202)}
        last_ack = max(r.acked_at for r in results if r.acked_at)
        done_at = wait_processed(engine, endpoint_path, acked)
        if done_at:
            print(
                f"  all processed {done_at - faults_over:.1f}s after the last fault was over, "
                f"{done_at - rig.redis_back:.1f}s after Redis came back, "
                f"{done_at - last_ack:.1f}s after the last acknowledgement"
            )
        else:
            print(f"  NOT all processed {DEADLINE}s after the last fault")

        rows, events = db_state(engine, endpoint_path)
        problems = find_problems(rows, events, acked, results)
        if done_at and done_at - faults_over > PROMISE:
            problems.append(
                f"processed {done_at - faults_over:.0f}s after the faults (> {PROMISE})"
            )
        unexpected = [p.name for p in rig.processes if not p.alive and not p.killed_by_us]
        if unexpected:
            problems.append(f"processes exited by themselves: {unexpected}")
        processed = [r for rs in rows.values() for r in rs if r.status == "processed"]
        print(
            f"  {len(processed)} processed, {sum(events[r.id] for r in processed)} case events, "
            f"{sum(1 for r in processed if r.attempts)} processed after a failed attempt"
        )
        if problems:
            with engine.connect() as connection:
                leases = connection.execute(text("SELECT * FROM leases")).all()
            print("\n  leases:", *leases, sep="\n    ")
            print(format_tails(rig.processes, 60))
            tails_printed = True
        assert not problems, "\n".join(problems)
    except BaseException:
        if not tails_printed:
            print(format_tails(rig.processes, 60))
        raise
    finally:
        stop_sending.set()
        stop_all(rig.processes)
        engine.dispose()
