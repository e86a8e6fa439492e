"""Creating, finding and cancelling tasks (the domain side; ``runner.py`` runs them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from app import clock, metrics
from app.errors import DomainError
from app.events.context import current_correlation
from app.extensions import db
from app.logs import log
from app.tasks.kinds import get_kind
from app.tasks.models import CANCELLED, QUEUED, RUNNING, Task
from app.tasks.wake import wake_after_commit


def create_task(
    kind: str,
    subject: str = "",
    payload: dict | None = None,
    *,
    priority: int = 100,
    run_after: datetime | None = None,
    dedup: bool = True,
    concurrency_key: str | None = None,
    concurrency_limit: int | None = None,
    max_attempts: int | None = None,
) -> Task:
    """Add a task of ``kind`` about ``subject`` to the session, uncommitted.

    The caller commits; the wake-up then goes to a worker by itself. ``dedup``: while a task
    of the same kind and subject is unfinished, it is returned instead of a new one (the
    running task reads the latest facts). ``run_after`` delays it (the supervisor wakes it
    when it is due). ``concurrency_key`` groups tasks under the kind's concurrency limit
    (default: the kind's name); ``concurrency_limit`` gives this task its own limit for that
    key instead of the kind's (an agent's max concurrent runs). ``max_attempts`` overrides
    the kind's (its retry delays still apply). ``UnknownTaskKind`` if no module registered
    ``kind``. The current correlation id (``app/events/context.py``) goes into the payload
    as ``correlation_id``, so the events the task writes share it.
    """
    spec = get_kind(kind)
    correlation = current_correlation()
    if correlation and "correlation_id" not in (payload or {}):
        # Events the task writes belong to the chain of work that asked for it.
        payload = {**(payload or {}), "correlation_id": correlation}
    active_key = f"{kind}:{subject}"[:260] if dedup else None
    if active_key is not None:
        existing = db.session.scalar(db.select(Task).where(Task.active_key == active_key))
        if existing is not None:
            return existing
    now = clock.now()
    due = run_after is None or run_after <= now
    task = Task(
        kind=kind,
        subject=subject[:200],
        payload=payload or {},
        priority=priority,
        run_after=run_after or now,
        max_attempts=max_attempts or spec.max_attempts,
        active_key=active_key,
        concurrency_key=(concurrency_key or kind)[:100]
        if spec.concurrency or concurrency_limit
        else None,
        concurrency_limit=concurrency_limit,
        woken_at=now if due else None,
        created_at=now,
    )
    if active_key is not None and db.engine.dialect.name == "postgresql":
        # Two requests at once: the unique key refuses the second, which returns the first.
        try:
            with db.session.begin_nested():
                db.session.add(task)
        except IntegrityError:
            return db.session.scalar(db.select(Task).where(Task.active_key == active_key))
    else:
        db.session.add(task)
        db.session.flush()
    if due and spec.concurrency and _line_busy(task):
        task.woken_at = None  # the supervisor wakes it if it heads its line before its turn
    elif due:
        wake_after_commit(db.session(), task)
    return task


def _line_busy(task: Task) -> bool:
    """Whether an earlier unfinished task shares ``task``'s concurrency key: then that one
    hands the slot on (``runner.run_task``) and a wake-up now would only be refused."""
    return (
        db.session.scalar(
            db.select(Task.id)
            .where(
                Task.concurrency_key == task.concurrency_key,
                Task.status.in_((QUEUED, RUNNING)),
                Task.id != task.id,
            )
            .limit(1)
        )
        is not None
    )


def latest_task(kind: str, subject: str) -> Task | None:
    """The newest task of ``kind`` about ``subject`` (any state), or None."""
    return db.session.scalar(
        db.select(Task)
        .where(Task.kind == kind, Task.subject == subject)
        .order_by(Task.created_at.desc(), Task.id.desc())
        .limit(1)
    )


def get_task(task_id: str) -> Task | None:
    return db.session.get(Task, task_id) if isinstance(task_id, str) else None


class NotCancellable(DomainError, ValueError):
    """The task has already finished."""

    status, error = 409, "not_cancellable"


def cancel_task(task: Task, reason: str = "cancelled") -> Task:
    """Cancel a queued or running task (the caller commits).

    A running task loses its lease: its worker sees that at its next heartbeat and stops
    (kinds that run subprocesses kill them). ``NotCancellable`` when it has finished.
    """
    if task.status not in (QUEUED, RUNNING):
        raise NotCancellable(f"task {task.id} is {task.status}")
    task.status = CANCELLED
    task.finished_at = clock.now()
    task.active_key = None
    task.lease_owner = None
    task.lease_expires_at = None
    task.last_error = reason[:2000]
    metrics.task_finished(task.kind, CANCELLED)  # counted before the caller's commit
    log.info("task.cancelled", task_id=task.id, kind=task.kind, reason=reason[:200])
    return task


def task_state(task: Task | None) -> dict[str, Any] | None:
    """``{"id", "status", "attempts", "last_error"}`` for the API and partials, or None."""
    if task is None:
        return None
    return {
        "id": task.id,
        "status": task.status,
        "attempts": task.attempts,
        "last_error": task.last_error,
    }
