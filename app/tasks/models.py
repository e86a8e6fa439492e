"""Durable work: tasks, their attempts, and named leases.

The database row is the truth; Redis only carries wake-ups (``app/tasks/wake.py``). A task
that loses its wake-up (Redis restarted empty) or its worker (``kill -9``) is found again by
the supervisor (``app/tasks/supervisor.py``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.ids import new_id

#: Task states. ``queued`` waits for ``run_after``; ``running`` holds a lease.
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
UNFINISHED = (QUEUED, RUNNING)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)


class Task(db.Model):
    """One unit of background work of a registered ``kind`` about a ``subject``.

    ``subject`` names what it is about (``"case:12"``, ``"branch:7"``, ``"delivery:01J…"``).
    ``priority``: lower runs first. ``attempts`` counts claims (a lost worker counts too).
    ``active_key`` is ``kind:subject`` while the task is unfinished and NULL after, so a
    unique index keeps one unfinished task per kind and subject when asked (``dedup``).
    ``concurrency_key`` groups tasks that share a concurrency limit (the kind, or e.g. an
    agent's name). ``woken_at`` is when a wake-up was last sent to the queue.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_status_run_after", "status", "run_after"),
        Index("ix_tasks_kind_subject", "kind", "subject"),
        # Claims count a line's running tasks and look for who is ahead in it.
        Index("ix_tasks_concurrency", "concurrency_key", "status", "run_after"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(50))
    subject: Mapped[str] = mapped_column(String(200), default="")
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=QUEUED)
    priority: Mapped[int] = mapped_column(default=100)
    run_after: Mapped[datetime] = mapped_column(default=clock.now)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=1)
    active_key: Mapped[str | None] = mapped_column(String(260), unique=True)
    concurrency_key: Mapped[str | None] = mapped_column(String(100))
    #: This task's own limit for its ``concurrency_key`` (e.g. an agent's max concurrent
    #: runs); None: the kind's ``concurrency``.
    concurrency_limit: Mapped[int | None]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    woken_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict | list | str | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    attempt_log: Mapped[list[TaskAttempt]] = relationship(
        back_populates="task", order_by="TaskAttempt.number", cascade="all, delete-orphan"
    )

    @property
    def pending(self) -> bool:
        """Queued or running: the work is still to come."""
        return self.status in UNFINISHED

    def to_dict(self) -> dict:
        """The task as the JSON API shows it."""
        from app.cases.models import _iso

        return {
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "status": self.status,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "run_after": _iso(self.run_after),
            "last_error": self.last_error,
            "created_at": _iso(self.created_at),
            "finished_at": _iso(self.finished_at),
        }


class TaskAttempt(db.Model):
    """One try at a task: when, by whom, how it ended and how long it took.

    ``outcome``: ``running`` (still going, or its worker died: the supervisor then writes
    ``lost``), ``succeeded``, ``failed``, ``timed_out``, ``cancelled``, ``lost``.
    ``detail`` is the error, or an excerpt of a response (≤ 2,000 characters);
    ``status_code`` an HTTP status for kinds that make requests.
    """

    __tablename__ = "task_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    worker: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(default=clock.now)
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(20), default="running")
    latency_ms: Mapped[float | None]
    status_code: Mapped[int | None]
    detail: Mapped[str | None] = mapped_column(Text)

    task: Mapped[Task] = relationship(back_populates="attempt_log")


class Lease(db.Model):
    """A named lease: who holds it until when (``app/tasks/leases.py``)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime]
