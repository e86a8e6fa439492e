"""Agents (registered external commands) and their runs on cases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.ids import new_id

#: What ``AgentRun.status`` can be.
RUN_STATUSES = ("awaiting_approval", "queued", "running", "succeeded", "failed", "timed_out",
                "cancelled")  # fmt: skip


class Agent(db.Model):
    """An external command Casehook may run on a case.

    ``argv``: the command as a list (run directly, never through a shell). ``env``: names of
    the worker's environment variables passed through (everything else is withheld);
    ``secrets``: ``{name in the agent's environment: name of the worker's variable holding
    it}`` (the value never reaches the database). ``timeout_seconds``: wall-clock limit of
    one attempt; ``max_output_bytes``: stdout and stderr are each kept up to this size;
    ``retries``: further attempts after a failed one (a timeout is not retried).
    """

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    argv: Mapped[list] = mapped_column(JSON, default=list)
    workdir: Mapped[str | None] = mapped_column(String(1000))
    env: Mapped[list] = mapped_column(JSON, default=list)
    secrets: Mapped[dict] = mapped_column(JSON, default=dict)
    max_concurrent: Mapped[int] = mapped_column(default=1)
    timeout_seconds: Mapped[int] = mapped_column(default=600)
    max_output_bytes: Mapped[int] = mapped_column(default=65536)
    retries: Mapped[int] = mapped_column(default=0)
    source: Mapped[str] = mapped_column(String(20), default="console")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)

    def to_dict(self) -> dict:
        from app.cases.models import _iso

        return {
            "name": self.name,
            "description": self.description,
            "argv": list(self.argv or []),
            "workdir": self.workdir,
            "env": list(self.env or []),
            "secrets": dict(self.secrets or {}),
            "max_concurrent": self.max_concurrent,
            "timeout_seconds": self.timeout_seconds,
            "max_output_bytes": self.max_output_bytes,
            "retries": self.retries,
            "source": self.source,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


class AgentRun(db.Model):
    """One request to run an agent on a case.

    Its state has one source of truth: before approval, ``approval`` (``pending`` /
    ``rejected``) and no task; after, the task's status (``task_id``, kind ``agents.run``),
    with ``outcome`` telling ``timed_out`` apart from ``failed``. ``stdout``/``stderr``/
    ``exit_code``/``duration_ms`` are the latest attempt's. ``process_group``/``process_host``
    name the running agent's process group, so a worker that takes over after a crash can
    kill what the dead worker left behind.
    """

    __tablename__ = "agent_runs"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    agent_name: Mapped[str] = mapped_column(String(100))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    prompt: Mapped[str] = mapped_column(Text, default="")
    reply: Mapped[bool] = mapped_column(default=False)
    priority: Mapped[int] = mapped_column(default=100)
    requested_by: Mapped[str | None] = mapped_column(String(320))
    approval: Mapped[str | None] = mapped_column(String(20))
    decided_by: Mapped[str | None] = mapped_column(String(320))
    task_id: Mapped[str | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="SET NULL"), index=True
    )
    outcome: Mapped[str | None] = mapped_column(String(20))
    exit_code: Mapped[int | None]
    stdout: Mapped[str] = mapped_column(Text, default="")
    stderr: Mapped[str] = mapped_column(Text, default="")
    truncated: Mapped[bool] = mapped_column(default=False)
    duration_ms: Mapped[float | None]
    process_group: Mapped[int | None]
    process_host: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    task = relationship("Task", lazy="joined")

    @property
    def status(self) -> str:
        """``awaiting_approval``, ``queued``, ``running``, ``succeeded``, ``failed``,
        ``timed_out`` or ``cancelled`` (a rejected run counts as cancelled)."""
        if self.task is None:
            return "awaiting_approval" if self.approval == "pending" else "cancelled"
        status = self.task.status
        if status == "failed" and self.outcome == "timed_out":
            return "timed_out"
        return status

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "timed_out", "cancelled")

    def to_dict(self) -> dict:
        from app.cases.models import _iso

        task = self.task
        return {
            "id": self.id,
            "agent": self.agent_name,
            "case_id": self.case_id,
            "status": self.status,
            "prompt": self.prompt,
            "reply": self.reply,
            "requested_by": self.requested_by,
            "approval": self.approval,
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "truncated": self.truncated,
            "duration_ms": self.duration_ms,
            "attempts": task.attempts if task else 0,
            "last_error": task.last_error if task else None,
            "task_id": self.task_id,
            "queued_at": _iso(task.created_at if task else None),
            "started_at": _iso(task.started_at if task else None),
            "finished_at": _iso(task.finished_at if task else None),
            "created_at": _iso(self.created_at),
        }
