"""Running one task: claim it under a lease, heartbeat, call its kind, record the attempt.

Claiming is one conditional UPDATE (``queued`` and due → ``running``, with a lease), so two
workers woken for one task never both run it. While the handler runs, a heartbeat thread
pushes the lease forward; a worker that dies stops doing so, and the supervisor puts the
task back in the queue once the lease has expired (the attempt is recorded as ``lost``).
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, text

from app import clock, logs, metrics
from app.events.context import caused_by
from app.extensions import db
from app.logs import log
from app.tasks.kinds import TaskKind, UnknownTaskKind, get_kind
from app.tasks.leases import process_owner
from app.tasks.models import FAILED, QUEUED, RUNNING, SUCCEEDED, Task, TaskAttempt
from app.tasks.wake import wake

_tasks = Task.__table__


class TaskFailed(Exception):
    """Raised by a handler: this task cannot succeed, do not retry it."""


class TaskCancelled(Exception):
    """Raised inside a handler (by ``check_cancelled``) when its task lost its lease."""


class AttemptFailed(Exception):
    """Raised by a handler that knows more about its failure than an exception says.

    ``retry_after``: seconds until the next attempt, instead of the kind's schedule (a
    receiver's ``Retry-After``, or a schedule read from settings at run time); ``final``:
    do not retry; ``status_code``: the HTTP status the attempt got, for the attempt log.
    """

    def __init__(
        self,
        detail: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = None,
        final: bool = False,
    ) -> None:
        super().__init__(detail)
        self.retry_after, self.status_code, self.final = retry_after, status_code, final


class RetryAfter(AttemptFailed):
    """Raised by a handler: this attempt failed, try again in ``seconds`` (e.g. a rate
    limit's ``Retry-After``) instead of after the kind's next retry delay. It counts as an
    attempt; after the last one the task fails. ``detail`` is recorded on the attempt."""

    def __init__(self, seconds: float, detail: str) -> None:
        super().__init__(detail, retry_after=max(0.0, float(seconds)))
        self.seconds, self.detail = self.retry_after, detail


@dataclass
class Recorded:
    """What a handler that made a request returns: its ``result`` (stored on the task) and
    what the attempt log shows (``status_code``, ``detail`` such as a response excerpt)."""

    result: Any = None
    status_code: int | None = None
    detail: str | None = None


class _Heartbeat(threading.Thread):
    """Pushes the task's lease forward every third of its length until stopped."""

    def __init__(self, app: Any, task_id: str, owner: str, lease_seconds: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{task_id}")
        self.app, self.task_id, self.owner = app, task_id, owner
        self.lease_seconds = lease_seconds
        self.stopped = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.lease_seconds / 3):
            try:
                with self.app.app_context(), db.engine.begin() as connection:
                    now = clock.now()
                    kept = connection.execute(
                        _tasks.update()
                        .where(
                            _tasks.c.id == self.task_id,
                            _tasks.c.status == RUNNING,
                            _tasks.c.lease_owner == self.owner,
                        )
                        .values(
                            heartbeat_at=now,
                            lease_expires_at=now + timedelta(seconds=self.lease_seconds),
                        )
                    ).rowcount
                if not kept:
                    self.lost.set()  # cancelled, or taken over after a stall
                    return
            except Exception as exc:  # a missed beat is not fatal; the lease has slack
                log.warning("task.heartbeat_failed", task_id=self.task_id, error=str(exc))


_current: _Heartbeat | None = None


def check_cancelled() -> None:
    """For long handlers: raise ``TaskCancelled`` if the running task lost its lease
    (cancelled from the console or API)."""
    if _current is not None and _current.lost.is_set():
        raise TaskCancelled("the task was cancelled")


def cancelled() -> bool:
    """True when the running task lost its lease (cancelled, or taken over): for handlers
    that poll rather than raise (a subprocess to stop first)."""
    return _current is not None and _current.lost.is_set()


def run_task(task_id: str) -> str:
    """Claim and run the task ``task_id`` now, if it is queued and due; returns what
    happened ("succeeded", "failed", "retry in 60s", "not claimed", ...).

    A kind with ``chain_seconds`` then runs the next due task of the same concurrency key
    in this worker, while the chain is younger than that (see ``TaskKind``).
    Every line logged meanwhile (the handlers' too) names the task, its kind and its case."""
    chain_until = time.monotonic()
    verdict, key, spec = _run_one(task_id)
    if verdict == "not claimed":
        _hand_on(task_id)
    if spec is not None and spec.chain_seconds:
        chain_until += spec.chain_seconds
    while key is not None:
        next_id = _next_due(key)
        if next_id is None:
            break
        if time.monotonic() > chain_until:
            # Its turn is over: the next in line queues behind the other lines' wake-ups.
            wake([(next_id, spec.name)])
            break
        _verdict, key, spec = _run_one(next_id)
    return verdict


def _run_one(task_id: str) -> tuple[str, str | None, TaskKind | None]:
    """Run one task: ``(verdict, its concurrency key if it held a slot, its kind)``."""
    with logs.bound(task_id=task_id):
        return _run_one_bound(task_id)


def _run_one_bound(task_id: str) -> tuple[str, str | None, TaskKind | None]:
    global _current
    owner = process_owner()
    task = _claim(task_id, owner)
    if task is None:
        return "not claimed", None, None
    key = task.concurrency_key
    try:
        spec = get_kind(task.kind)
    except UnknownTaskKind:
        verdict = _finish(task, None, owner, FAILED, f"no task kind {task.kind!r} is registered", 0)
        return verdict, None, None
    lease = float(current_app.config["TASK_LEASE_SECONDS"])
    heartbeat = _Heartbeat(current_app._get_current_object(), task.id, owner, lease)
    heartbeat.start()
    _current = heartbeat
    started = time.perf_counter()
    try:
        return _attempt(task, spec, owner, started), key, spec
    finally:
        heartbeat.stopped.set()
        _current = None


def _attempt(task: Task, spec: TaskKind, owner: str, started: float) -> str:
    try:
        with caused_by(task.id, (task.payload or {}).get("correlation_id") or task.id):
            result = spec.handler(task)
    except TaskFailed as exc:
        db.session.rollback()
        return _finish(task, spec, owner, FAILED, str(exc), started, final=True)
    except TaskCancelled:
        db.session.rollback()
        _close_attempt(task.id, "cancelled", started)
        return "cancelled"  # run_task wakes the next in its line: the slot is free
    except AttemptFailed as exc:
        db.session.rollback()
        return _finish(task, spec, owner, FAILED, str(exc), started, final=exc.final,
                       status_code=exc.status_code, retry_after=exc.retry_after)  # fmt: skip
    except Exception as exc:
        db.session.rollback()
        outcome = "timed_out" if exc.__class__.__name__ == "JobTimeoutException" else "failed"
        detail = f"{exc.__class__.__name__}: {exc}"
        log.warning("task.attempt_failed", task_id=task.id, kind=task.kind, error=detail,
                    trace=traceback.format_exc(limit=5)[-2000:])  # fmt: skip
        return _finish(task, spec, owner, outcome, detail, started)
    if isinstance(result, Recorded):
        return _finish(task, spec, owner, SUCCEEDED, result.detail, started,
                       result=result.result, status_code=result.status_code)  # fmt: skip
    return _finish(task, spec, owner, SUCCEEDED, None, started, result=result)


def _claim(task_id: str, owner: str) -> Task | None:
    task = db.session.get(Task, task_id) if isinstance(task_id, str) else None
    if task is None or task.status != QUEUED:
        db.session.rollback()
        return None
    now = clock.now()
    try:
        spec = get_kind(task.kind)
    except UnknownTaskKind:
        spec = None
    lease = float(current_app.config["TASK_LEASE_SECONDS"])
    condition = [_tasks.c.id == task_id, _tasks.c.status == QUEUED, _tasks.c.run_after <= now]
    limit = task.concurrency_limit or (spec.concurrency if spec is not None else None)
    if limit and task.concurrency_key:
        if db.engine.dialect.name == "postgresql":
            # Counting and claiming must not interleave with another worker's: one lock
            # per concurrency key for the length of this transaction.
            db.session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                {"key": task.concurrency_key},
            )
        running = (
            db.select(func.count())
            .select_from(_tasks)
            .where(_tasks.c.concurrency_key == task.concurrency_key, _tasks.c.status == RUNNING)
            .scalar_subquery()
        )
        condition.append(running < limit)
        # In line: no due task of the same key comes before this one.
        ahead = _tasks.alias("ahead")
        condition.append(
            ~db.select(ahead.c.id)
            .where(
                ahead.c.concurrency_key == task.concurrency_key,
                ahead.c.status == QUEUED,
                ahead.c.run_after <= now,
                ahead.c.id != task.id,
                (ahead.c.priority < task.priority)
                | (
                    (ahead.c.priority == task.priority)
                    & (
                        (ahead.c.created_at < task.created_at)
                        | ((ahead.c.created_at == task.created_at) & (ahead.c.id < task.id))
                    )
                ),
            )
            .exists()
        )
    claimed = db.session.execute(
        _tasks.update()
        .where(*condition)
        .values(
            status=RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease),
            heartbeat_at=now,
            started_at=now,
            attempts=_tasks.c.attempts + 1,
        )
    ).rowcount
    if not claimed:
        db.session.rollback()
        return None
    db.session.add(TaskAttempt(task_id=task_id, number=task.attempts + 1, worker=owner,
                               started_at=now))  # fmt: skip
    db.session.commit()
    db.session.refresh(task)
    logs.bind(kind=task.kind, case_id=_case_id(task.subject))
    log.info("task.started", task_id=task.id, kind=task.kind, subject=task.subject,
             attempt=task.attempts)  # fmt: skip
    return task


def _case_id(subject: str | None) -> int | None:
    """The case a task is about, when its subject says so (``case:12``)."""
    kind, _, ident = (subject or "").partition(":")
    return int(ident) if kind == "case" and ident.isdigit() else None


def _finish(
    task: Task,
    spec: TaskKind | None,
    owner: str,
    outcome: str,
    detail: str | None,
    started: float,
    *,
    result: Any = None,
    final: bool = False,
    status_code: int | None = None,
    retry_after: float | None = None,
) -> str:
    """Record how the attempt ended and what comes next, in one short transaction."""
    latency_ms = round((time.perf_counter() - started) * 1000, 3) if started else None
    now = clock.now()
    attempt = db.session.scalar(
        db.select(TaskAttempt)
        .where(TaskAttempt.task_id == task.id)
        .order_by(TaskAttempt.number.desc())
        .limit(1)
    )
    if attempt is not None:
        attempt.finished_at, attempt.outcome = now, outcome
        attempt.latency_ms = latency_ms
        # A handler may have put its own detail (a response excerpt) on the attempt.
        attempt.detail = detail[:2000] if detail else attempt.detail
        if status_code is not None:
            attempt.status_code = status_code
    db.session.refresh(task)
    if task.status != RUNNING or task.lease_owner != owner:
        # Cancelled meanwhile, or the lease expired and another worker took over: what
        # this attempt produced is dropped.
        db.session.rollback()
        return f"dropped: the task is {task.status} elsewhere"
    task.lease_owner, task.lease_expires_at = None, None
    if outcome == SUCCEEDED:
        task.status, task.result, task.finished_at = SUCCEEDED, _jsonable(result), now
        task.active_key, task.last_error = None, None
        verdict = SUCCEEDED
    elif not final and spec is not None and task.attempts < task.max_attempts:
        if retry_after is not None:
            delay = max(0.0, retry_after)
        else:
            delay = spec.retry[min(task.attempts, len(spec.retry)) - 1] * random.uniform(0.9, 1.1)
        task.status, task.run_after, task.woken_at = QUEUED, now + timedelta(seconds=delay), None
        task.last_error = detail
        verdict = f"retry in {round(delay)}s"
    else:
        task.status, task.finished_at, task.active_key = FAILED, now, None
        task.last_error = detail
        verdict = FAILED
    db.session.commit()
    metrics.task_attempt(task.kind, outcome, latency_ms / 1000 if latency_ms else None)
    if verdict in (SUCCEEDED, FAILED):
        metrics.task_finished(task.kind, verdict)
    log.info("task.finished", task_id=task.id, kind=task.kind, outcome=outcome,
             verdict=verdict, latency_ms=latency_ms)  # fmt: skip
    return verdict


def _close_attempt(task_id: str, outcome: str, started: float) -> None:
    """Record how the newest attempt ended when the task itself is already settled
    (cancelled meanwhile), so the attempt does not stay ``running``."""
    _attempts = TaskAttempt.__table__
    newest = db.select(func.max(_attempts.c.number)).where(_attempts.c.task_id == task_id)
    with db.engine.begin() as connection:
        connection.execute(
            _attempts.update()
            .where(_attempts.c.task_id == task_id, _attempts.c.number == newest.scalar_subquery())
            .values(outcome=outcome, finished_at=clock.now(),
                    latency_ms=round((time.perf_counter() - started) * 1000, 3))
        )  # fmt: skip


def _hand_on(task_id: str) -> None:
    """A wake-up found its task not first in its line (a retry ahead of it fell due): if
    nobody is running that line, wake its head, at the front of the queue, so that the
    line does not wait for the supervisor."""
    task = db.session.get(Task, task_id) if isinstance(task_id, str) else None
    key = task.concurrency_key if task is not None and task.status == QUEUED else None
    if key is None:
        db.session.rollback()
        return
    running = db.session.scalar(
        db.select(Task.id).where(Task.concurrency_key == key, Task.status == RUNNING).limit(1)
    )
    head = None if running else _next_due(key)
    db.session.rollback()
    if head is not None and head != task_id:
        wake([(head, task.kind)], front=True)


def _next_due(concurrency_key: str) -> str | None:
    """A slot came free: the id of the next due task in line for it, if any."""
    task_id = db.session.scalar(
        db.select(Task.id)
        .where(
            Task.concurrency_key == concurrency_key,
            Task.status == QUEUED,
            Task.run_after <= clock.now(),
        )
        .order_by(Task.priority, Task.created_at, Task.id)
        .limit(1)
    )
    db.session.rollback()
    return task_id


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


def run_due(limit: int | None = None) -> int:
    """Run every due queued task in this process, highest priority first, until none is
    left (tests, ``flask tasks run``); returns how many runs it started (a chain of tasks
    sharing a concurrency key counts once). Retries scheduled for later are not waited for."""
    ran = 0
    tried: set[str] = set()
    while limit is None or ran < limit:
        ids = db.session.scalars(
            db.select(Task.id)
            .where(Task.status == QUEUED, Task.run_after <= clock.now(), Task.id.not_in(tried))
            .order_by(Task.priority, Task.created_at)
            .limit(50)
        ).all()
        db.session.rollback()
        if not ids:
            return ran
        for task_id in ids:
            tried.add(task_id)
            if run_task(task_id) != "not claimed":
                ran += 1
                tried.discard(task_id)  # a retry due at once may run again
    return ran
