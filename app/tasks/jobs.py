"""RQ jobs of the task system: thin wrappers that push an app context and call the runner."""

from __future__ import annotations

import time

from app.logs import log
from app.tasks.context import job_context


def run_task(task_id: str) -> str:
    """RQ job: claim and run the task ``task_id`` (a wake-up; see ``app/tasks/wake.py``)."""
    from app.tasks import runner

    started = time.perf_counter()
    with job_context():
        verdict = runner.run_task(task_id)
    log.info("job.finished", job="run_task", task_id=task_id, verdict=verdict,
             ms=round((time.perf_counter() - started) * 1000, 3))  # fmt: skip
    return verdict
