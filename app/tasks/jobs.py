"""RQ jobs of the task system: thin wrappers that push an app context and call the runner."""

from __future__ import annotations

from app.tasks.context import job_context


def run_task(task_id: str) -> str:
    """RQ job: claim and run the task ``task_id`` (a wake-up; see ``app/tasks/wake.py``)."""
    from app.tasks import runner

    with job_context():
        return runner.run_task(task_id)
