"""The supervisor: periodic work that must survive Redis restarts and worker crashes.

It is a thread in every worker process (``app/worker.py``) and a command for those who want
it as a process of its own (``flask tasks supervise``). Every ``SUPERVISOR_INTERVAL_SECONDS``
each copy tries to take the ``supervisor`` lease in the database; the one holding it runs
one tick:

1. tasks whose lease expired (their worker died) go back to the queue, attempt ``lost``;
2. due tasks whose wake-up is missing or stale (Redis lost it) are woken again;
3. deliveries acknowledged but not processed (the inbox's wake-up was lost, its worker
   died, or a failed delivery's retry is due) are woken (``app/webhooks/inbox.py``);
4. a ``sync.batch`` task when events wait for ``CASEHOOK_SYNC_URL`` (``app/events/sync.py``);
5. every ``SWEEP_INTERVAL_SECONDS``, the endpoints' inactivity rules.

Nothing here needs Redis to have kept anything: the database says what is due, and a Redis
restart (noticed by its ``run_id``) makes every pending wake-up count as lost at once.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from redis.exceptions import RedisError
from sqlalchemy.orm import aliased

from app import clock, metrics
from app.extensions import db
from app.logs import log
from app.tasks import leases
from app.tasks.models import FAILED, QUEUED, RUNNING, Task, TaskAttempt
from app.tasks.queue import redis_connection
from app.tasks.wake import wake

LEASE = "supervisor"


class Supervisor:
    """One tick at a time, remembering what it needs between ticks."""

    def __init__(self) -> None:
        self.redis_run_id: str | None = None
        self.redis_restarted = False
        self.last_sweep = 0.0

    def watch_redis(self) -> None:
        """Notice a Redis restart (its ``run_id`` changes). Every copy watches, not only the
        one acting: the acting one may have died with Redis."""
        try:
            run_id = redis_connection().info("server").get("run_id")
        except RedisError:
            return
        if self.redis_run_id is not None and run_id != self.redis_run_id:
            self.redis_restarted = True
        self.redis_run_id = run_id

    def tick(self) -> dict[str, int]:
        """Run one round of periodic work; returns counts of what it did."""
        from app.webhooks import inbox

        self.watch_redis()
        restarted, self.redis_restarted = self.redis_restarted, False
        done = {
            "lost_tasks": _safely(recover_lost_tasks),
            "woken_tasks": _safely(wake_due_tasks, force=restarted),
            "woken_partitions": _safely(
                inbox.wake_stranded,
                older_than=0 if restarted else current_app.config["SWEEP_AFTER_SECONDS"],
                force=restarted,
            ),
        }
        from app.events import sync

        done["sync"] = _safely(sync.schedule)
        interval = current_app.config["SWEEP_INTERVAL_SECONDS"]
        if time.monotonic() - self.last_sweep >= interval:
            from app.cases.inactivity import sweep_inactivity

            self.last_sweep = time.monotonic()
            done["inactivity"] = _safely(sweep_inactivity)
        if any(done.values()) or restarted:
            log.info("supervisor.tick", redis_restarted=restarted, **done)
        return done


def _safely(step: Any, **kwargs: Any) -> int:
    """Run one step; a failure (Redis or the database down) is logged, and the next tick
    tries again."""
    try:
        return int(step(**kwargs) or 0)
    except Exception as exc:
        db.session.rollback()
        log.warning("supervisor.step_failed", step=step.__name__, error=str(exc))
        return 0


def recover_lost_tasks() -> int:
    """Running tasks whose lease expired: their worker died. Back to the queue (or failed,
    when that was the last attempt); returns how many."""
    now = clock.now()
    lost = db.session.scalars(
        db.select(Task).where(Task.status == RUNNING, Task.lease_expires_at < now).limit(500)
    ).all()
    for task in lost:
        attempt = db.session.scalar(
            db.select(TaskAttempt)
            .where(TaskAttempt.task_id == task.id, TaskAttempt.outcome == "running")
            .order_by(TaskAttempt.number.desc())
            .limit(1)
        )
        if attempt is not None:
            attempt.outcome, attempt.finished_at = "lost", now
            attempt.detail = f"worker {task.lease_owner} stopped renewing its lease"
        task.lease_owner, task.lease_expires_at = None, None
        task.last_error = "the worker running it stopped (crashed or killed)"
        if task.attempts < task.max_attempts:
            task.status, task.run_after, task.woken_at = QUEUED, now, None
        else:
            task.status, task.finished_at, task.active_key = FAILED, now, None
        log.warning("task.lost", task_id=task.id, kind=task.kind, attempts=task.attempts)
    db.session.commit()
    for task in lost:
        metrics.task_attempt(task.kind, "lost")
        if task.status == FAILED:
            metrics.task_finished(task.kind, FAILED)
    return len(lost)


def wake_due_tasks(force: bool = False) -> int:
    """Wake queued tasks that are due and whose wake-up is missing or older than
    ``TASK_WAKE_STALE_SECONDS`` (every due one when ``force``); returns how many."""
    now = clock.now()
    stale = now - timedelta(seconds=current_app.config["TASK_WAKE_STALE_SECONDS"])
    query = db.select(Task.id, Task.kind).where(Task.status == QUEUED, Task.run_after <= now)
    # Tasks sharing a concurrency key start in line: only the first of each line (with none
    # of its line running) needs a wake-up; the rest follow it (runner.run_task).
    other = aliased(Task)
    query = query.where(
        Task.concurrency_key.is_(None)
        | ~db.select(other.id)
        .where(
            other.concurrency_key == Task.concurrency_key,
            other.id != Task.id,
            (other.status == RUNNING)
            | (
                (other.status == QUEUED)
                & (other.run_after <= now)
                & (
                    (other.priority < Task.priority)
                    | ((other.priority == Task.priority) & (other.created_at < Task.created_at))
                )
            ),
        )
        .exists()
    )
    if not force:
        query = query.where((Task.woken_at.is_(None)) | (Task.woken_at < stale))
    due = db.session.execute(query.order_by(Task.priority, Task.run_after).limit(1000)).all()
    if not due:
        db.session.rollback()
        return 0
    db.session.execute(
        Task.__table__.update().where(Task.id.in_([t.id for t in due])).values(woken_at=now)
    )
    db.session.commit()
    if not wake([(t.id, t.kind) for t in due]):
        # Not sent: forget the stamp so the next tick tries again without waiting.
        db.session.execute(
            Task.__table__.update().where(Task.id.in_([t.id for t in due])).values(woken_at=None)
        )
        db.session.commit()
        return 0
    return len(due)


def supervise_once(supervisor: Supervisor) -> dict[str, int] | None:
    """Take (or keep) the supervisor lease and tick; None when another process holds it."""
    interval = current_app.config["SUPERVISOR_INTERVAL_SECONDS"]
    if not leases.acquire(LEASE, ttl_seconds=max(10.0, interval * 5)):
        supervisor.watch_redis()
        return None
    return supervisor.tick()


def run_forever(app: Flask, stop: threading.Event) -> None:
    """The supervisor loop: tick every ``SUPERVISOR_INTERVAL_SECONDS`` until ``stop``."""
    supervisor = Supervisor()
    interval = app.config["SUPERVISOR_INTERVAL_SECONDS"]
    while not stop.is_set():
        try:
            with app.app_context():
                supervise_once(supervisor)
                db.session.remove()
        except Exception as exc:  # the database away: log, wait, try again
            log.warning("supervisor.tick_failed", error=str(exc))
        stop.wait(interval)


def start_thread(app: Flask) -> threading.Event:
    """Start the supervisor loop in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    threading.Thread(target=run_forever, args=(app, stop), daemon=True, name="supervisor").start()
    return stop
