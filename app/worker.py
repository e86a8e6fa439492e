"""The RQ worker class named in the Procfile (``rq worker -w app.worker.Worker``).

A ``SimpleWorker`` runs jobs in its own process instead of forking one per job: the app,
its database pool and Redis connection are made once, which is what lets one worker
process drain hundreds of deliveries a second. RQ still enforces job timeouts (SIGALRM).
"""

from __future__ import annotations

from typing import Any

from rq import SimpleWorker

from app.logs import log
from app.webhooks.jobs import job_context, schedule_sweeper


class Worker(SimpleWorker):
    def work(self, *args: Any, **kwargs: Any) -> bool:
        # Each worker makes sure a sweep is scheduled, so stranded deliveries are found
        # even on a box where nobody runs `flask deliveries requeue`.
        try:
            with job_context():
                schedule_sweeper(5)
        except Exception as exc:  # Redis down at start: rq itself will report it next
            log.warning("sweeper.schedule_failed", error=str(exc))
        return super().work(*args, **kwargs)
