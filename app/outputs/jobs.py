"""RQ jobs that write resolution outputs: thin wrappers around ``app.outputs.service``.

Enqueued by import path after the commit that asked for them, with deterministic job ids
(``outputs-<queue>-<case id>`` for all three, ``…-<kind>`` for one regenerated), so
the case page can tell that writing is under way (``writing_state``) and a second request
while one waits does not queue a duplicate.
"""

from __future__ import annotations

import re
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from rq import Retry
from rq.job import Job, JobStatus

from app.logs import log
from app.tasks.context import job_context
from app.tasks.queue import get_queue, redis_connection

WRITE_OUTPUTS = "app.outputs.jobs.write_outputs"
REGENERATE_OUTPUT = "app.outputs.jobs.regenerate_output"
#: Job states in which the writing is still to come.
WAITING = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def write_job_id(case_id: int) -> str:
    """``outputs-<queue>-<case id>``: case ids repeat across databases that share one Redis
    (deployments, test runs), queue names tell them apart."""
    return f"outputs-{_queue_part()}-{case_id}"


def regenerate_job_id(case_id: int, kind: str) -> str:
    return f"{write_job_id(case_id)}-{kind}"


def _queue_part() -> str:
    # RQ job ids allow letters, digits, "_" and "-" only.
    return re.sub(r"[^A-Za-z0-9_-]", "_", current_app.config["RQ_QUEUE"])


def job_ids(case_id: int) -> list[str]:
    from app.writing import KINDS

    return [write_job_id(case_id), *(regenerate_job_id(case_id, kind) for kind in KINDS)]


def enqueue_write(case_id: int, actor: str | None = None) -> bool:
    """Enqueue ``write_outputs(case_id)``; False when Redis is unreachable (the case page
    then offers to write them)."""
    return _enqueue(WRITE_OUTPUTS, write_job_id(case_id), case_id, actor)


def enqueue_regenerate(output: Any, keep_edits: bool = False, actor: str | None = None) -> bool:
    """Enqueue ``regenerate_output`` for ``output``; False when Redis is unreachable."""
    return _enqueue(
        REGENERATE_OUTPUT,
        regenerate_job_id(output.case_id, output.kind),
        output.id,
        bool(keep_edits),
        actor,
    )


def _enqueue(function: str, job_id: str, *args: Any) -> bool:
    from app.writing.llm import llm_settings

    settings = llm_settings()
    # Three documents, each one LLM call at most: room for all of them to time out.
    timeout = int(3 * settings["timeout"] + 60) if settings else 180
    try:
        connection = redis_connection()
        existing = (
            Job.fetch(job_id, connection=connection)
            if Job.exists(job_id, connection=connection)
            else None
        )
        if existing is not None and existing.get_status(refresh=True) in WAITING:
            return True  # already on its way; the running job reads the latest facts
        get_queue().enqueue(
            function,
            *args,
            job_id=job_id,
            job_timeout=timeout,
            retry=Retry(max=2, interval=[10, 60]),
            result_ttl=300,
            failure_ttl=7 * 86400,
        )
        return True
    except RedisError as exc:
        log.warning("outputs.enqueue_failed", job_id=job_id, error=str(exc))
        return False


def write_outputs(case_id: int, actor: str | None = None) -> str:
    """RQ job: write the three outputs of case ``case_id``."""
    from app.outputs import service

    with job_context():
        written = service.write_outputs(case_id, actor=actor)
        return f"wrote {len(written)} outputs"


def regenerate_output(output_id: int, keep_edits: bool = False, actor: str | None = None) -> str:
    """RQ job: write output ``output_id`` again (keeping edits if asked)."""
    from app.extensions import db
    from app.outputs import service
    from app.outputs.models import ResolutionOutput

    with job_context():
        output = db.session.get(ResolutionOutput, output_id)
        if output is None:
            return "output gone"
        service.regenerate(output, keep_edits=keep_edits, actor=actor)
        return f"regenerated {output.kind}"


def writing_state(case_id: int, since: Any = None) -> dict:
    """Where writing stands for a case: ``{"state": "pending"|"failed"|"idle",
    "detail": str|None}``.

    ``pending``: a job is queued, running or waiting to retry. ``failed``: the latest job
    failed after ``since`` (the newest output's time; None: any failure counts), with the
    error's last line. Redis unreachable reads as idle (the page still shows what is stored).
    """
    try:
        connection = redis_connection()
        jobs = [job for job in Job.fetch_many(job_ids(case_id), connection=connection) if job]
        statuses = [(job, job.get_status(refresh=False)) for job in jobs]
    except RedisError as exc:
        log.warning("outputs.state_unknown", case_id=case_id, error=str(exc))
        return {"state": "idle", "detail": None}
    if any(status in WAITING for _, status in statuses):
        return {"state": "pending", "detail": None}
    from app.templating import as_utc

    failed = [
        job
        for job, status in statuses
        if status == JobStatus.FAILED
        and job.ended_at is not None
        and (since is None or as_utc(job.ended_at) > as_utc(since))
    ]
    if failed:
        latest = max(failed, key=lambda job: as_utc(job.ended_at))
        error = (latest.latest_result().exc_string if latest.latest_result() else "") or ""
        lines = [line for line in error.strip().splitlines() if line.strip()]
        return {"state": "failed", "detail": lines[-1] if lines else "the job failed"}
    return {"state": "idle", "detail": None}
