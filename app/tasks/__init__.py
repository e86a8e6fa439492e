"""Durable background work: tasks with attempts, leases, retries and a supervisor.

Every slow or external call (writing documents, outbound webhooks, replies to the source,
agent runs, sync batches) is a *task kind*. Declare one with ``@task_kind``, create tasks
with ``create_task`` inside the transaction that asks for them, commit, and a worker runs
them (``app/tasks/runner.py``). The database row is the truth; Redis carries wake-ups;
the supervisor (``app/tasks/supervisor.py``) finds what a crash or a Redis restart left.
"""

from app.tasks.kinds import TaskKind, UnknownTaskKind, get_kind, task_kind
from app.tasks.models import Task, TaskAttempt
from app.tasks.runner import (
    AttemptFailed,
    Recorded,
    RetryAfter,
    TaskCancelled,
    TaskFailed,
    check_cancelled,
    run_due,
    run_task,
)
from app.tasks.service import (
    NotCancellable,
    cancel_task,
    create_task,
    get_task,
    latest_task,
    task_state,
)

__all__ = [
    "AttemptFailed",
    "NotCancellable",
    "Recorded",
    "RetryAfter",
    "Task",
    "TaskAttempt",
    "TaskCancelled",
    "TaskFailed",
    "TaskKind",
    "UnknownTaskKind",
    "cancel_task",
    "check_cancelled",
    "create_task",
    "get_kind",
    "get_task",
    "latest_task",
    "run_due",
    "run_task",
    "task_kind",
    "task_state",
]
