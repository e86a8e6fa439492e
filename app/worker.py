"""The RQ worker class named in the Procfile (``rq worker -w app.worker.Worker``).

A ``SimpleWorker`` runs jobs in its own process instead of forking one per job: the app,
its database pool and Redis connection are made once, which is what lets one worker
process drain hundreds of deliveries a second. RQ still enforces job timeouts (SIGALRM).

Two things RQ's worker does not do, and Casehook needs:

- it **outlives Redis**: RQ's loop quits on some Redis errors (a restart in the middle of a
  job's bookkeeping); this one waits and starts over under a new name, so a Redis restart
  never takes the worker process (and, under honcho, the whole Procfile) down with it;
- it runs the **supervisor** in a thread (``app/tasks/supervisor.py``): lost wake-ups,
  expired leases, due retries and inactivity rules, whatever happened to Redis.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import current_app
from rq import SimpleWorker

from app.logs import log
from app.tasks import supervisor
from app.tasks.context import job_context

#: Seconds to wait before starting over after the loop quit on an error.
RESTART_PAUSE = 2.0


class Worker(SimpleWorker):
    #: RQ backs off up to a minute between reconnects; work waits in the database, so come
    #: back soon after Redis does.
    max_connection_wait_time = 2.0

    def work(self, *args: Any, **kwargs: Any) -> bool:
        with job_context():
            app = current_app._get_current_object()
        stop = supervisor.start_thread(app)
        burst = bool(kwargs.get("burst") or (args and args[0]))
        worked = False
        try:
            while True:
                try:
                    worked = super().work(*args, **kwargs) or worked
                except Exception as exc:  # Redis away at start-up or tear-down
                    log.warning("worker.loop_failed", worker=self.name, error=str(exc))
                # Asked to stop (SIGINT/SIGTERM: RQ notes when), or done with a burst.
                if burst or self._stop_requested or self._shutdown_requested_date:
                    return worked
                # RQ's loop quit without being asked to (Redis went away mid-job): start
                # over, under a fresh name (the old one may still be registered).
                time.sleep(RESTART_PAUSE)
                self.name = uuid.uuid4().hex
                log.warning("worker.restarted", worker=self.name)
        finally:
            stop.set()
