"""RQ jobs of the webhooks feature: thin wrappers that push an app context and call the
domain (``app/webhooks/inbox.py``)."""

from __future__ import annotations

import time

from app.logs import log
from app.tasks.context import job_context


def process_inbox(partition: int) -> int:
    """RQ job: drain inbox partition ``partition``; returns how many deliveries it processed."""
    from app.webhooks import inbox

    started = time.perf_counter()
    with job_context():
        done = inbox.process_partition(int(partition))
    log.info("job.finished", job="process_inbox", partition=int(partition), processed=done,
             ms=round((time.perf_counter() - started) * 1000, 3))  # fmt: skip
    return done
