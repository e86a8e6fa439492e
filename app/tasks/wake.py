"""Wake-ups: telling a worker that a task is due. Commit first, then wake.

A wake-up is an RQ job ``run_task(task id)``; it carries no state, so a lost one (Redis
restarted, worker killed before it ran) costs only time: the supervisor wakes due tasks
whose wake-up is older than ``TASK_WAKE_STALE_SECONDS``. A duplicate one is harmless:
only one claim of a queued task succeeds.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.logs import log
from app.tasks.queue import get_queue

RUN_TASK = "app.tasks.jobs.run_task"
_PENDING = "casehook.tasks_to_wake"


def wake_after_commit(session: Session, task: Any) -> None:
    """Wake ``task`` once ``session`` commits (forgotten if it rolls back)."""
    session.info.setdefault(_PENDING, []).append((task.id, task.kind))


@event.listens_for(Session, "after_commit")
def _wake_committed(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending:
        wake(pending)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


def wake(tasks: list[tuple[str, str]], *, front: bool = False) -> bool:
    """Enqueue one ``run_task`` job per ``(task id, kind)`` (``front``: ahead of the queue,
    for a line handing on its slot); False (logged) when Redis is unreachable. RQ stops a
    job that outlives its kind's timeout (``JobTimeoutException``
    in the handler), which the runner records as ``timed_out``."""
    try:
        queue = get_queue()
        with queue.connection.pipeline() as pipeline:
            for task_id, kind in tasks:
                queue.enqueue(
                    RUN_TASK,
                    task_id,
                    result_ttl=0,
                    failure_ttl=86400,
                    job_timeout=_timeout(kind),
                    at_front=front,
                    pipeline=pipeline,
                )
            pipeline.execute()
        return True
    except RedisError as exc:
        log.warning("task.wake_failed", task_ids=[t for t, _ in tasks[:20]], error=str(exc))
        return False


def _timeout(kind_name: str) -> int:
    from app.tasks.kinds import UnknownTaskKind, get_kind

    try:
        kind = get_kind(kind_name)
        # A chain starts its last task at most chain_seconds in, with its whole timeout left.
        return max(1, int(kind.timeout + kind.chain_seconds))
    except UnknownTaskKind:
        return int(current_app.config["TASK_DEFAULT_TIMEOUT_SECONDS"])
