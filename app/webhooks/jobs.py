"""RQ jobs: thin wrappers that push an app context, load by id and call the domain.

Jobs are enqueued by import path with a deterministic job id (``delivery-<Delivery.id>``),
so the sweeper can tell whether a delivery already has a job waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from flask import Flask, current_app, has_app_context
from redis.exceptions import RedisError
from rq import Retry
from rq.job import Job

from app.logs import log
from app.queue import get_queue, redis_connection

PROCESS_DELIVERY = "app.webhooks.jobs.process_delivery"
SWEEP = "app.webhooks.jobs.sweep"
SWEEPER_LOCK = "casehook:sweeper:scheduled"
_worker_app: Flask | None = None


@contextmanager
def job_context() -> Iterator[None]:
    """Push an app context for one job (the caller's, when it already has one: tests)."""
    if has_app_context():
        yield
        return
    global _worker_app
    if _worker_app is None:
        from app import create_app

        _worker_app = create_app()
    with _worker_app.app_context():
        yield


def delivery_job_id(delivery_pk: str) -> str:
    return f"delivery-{delivery_pk}"


def enqueue_processing(delivery_pk: str) -> bool:
    """Enqueue ``process_delivery`` for a committed delivery; False when Redis is unreachable.

    The delivery is already stored, so a failure here loses nothing: the sweeper retries.
    Retries on failure: 3, after 10 s, 60 s and 5 min.
    """
    queue = get_queue()
    try:
        # One round trip to Redis: the job and its place in the queue in one pipeline.
        with queue.connection.pipeline() as pipeline:
            queue.enqueue(
                PROCESS_DELIVERY,
                delivery_pk,
                job_id=delivery_job_id(delivery_pk),
                retry=Retry(max=3, interval=[10, 60, 300]),
                result_ttl=300,
                failure_ttl=7 * 86400,
                pipeline=pipeline,
            )
            pipeline.execute()
        return True
    except RedisError as exc:
        log.warning("delivery.enqueue_failed", delivery_pk=delivery_pk, error=str(exc))
        return False


def process_delivery(delivery_pk: str) -> str:
    """RQ job: process the stored delivery ``delivery_pk``; returns the outcome."""
    from app.webhooks import processing

    with job_context():
        try:
            return processing.process_delivery(delivery_pk)
        except Exception as exc:
            processing.mark_failed(delivery_pk, exc)
            raise


def requeue_stranded(older_than_seconds: float) -> int:
    """Enqueue deliveries still ``received`` after ``older_than_seconds`` with no job waiting.

    Returns how many were enqueued. Used by the periodic sweeper and
    ``flask deliveries requeue``. Raises ``redis.RedisError`` when Redis is unreachable.
    """
    from app import clock
    from app.extensions import db
    from app.webhooks.models import Delivery

    cutoff = clock.now() - timedelta(seconds=older_than_seconds)
    stranded = db.session.scalars(
        db.select(Delivery.id)
        .where(Delivery.status == "received", Delivery.received_at <= cutoff)
        .order_by(Delivery.received_at)
    ).all()
    connection = redis_connection()
    count = 0
    for delivery_pk in stranded:
        if Job.exists(delivery_job_id(delivery_pk), connection=connection):
            continue
        if not enqueue_processing(delivery_pk):
            raise RedisError("Redis became unreachable while requeueing")
        count += 1
    return count


def sweep() -> int:
    """RQ job: apply inactivity rules, requeue stranded deliveries, schedule the next sweep."""
    with job_context():
        redis_connection().delete(SWEEPER_LOCK)
        try:
            from app.cases.inactivity import sweep_inactivity  # idle cases: close or park

            sweep_inactivity()  # logs (never raises) its own failures
            count = requeue_stranded(current_app.config["SWEEP_AFTER_SECONDS"])
            log.info("deliveries.swept", requeued=count)
            return count
        finally:
            schedule_sweeper(current_app.config["SWEEP_INTERVAL_SECONDS"])


def schedule_sweeper(in_seconds: float) -> bool:
    """Schedule the sweeper ``in_seconds`` from now unless one is already scheduled.

    A Redis key (set-if-absent, expiring) keeps several workers from each starting a chain.
    Needs a worker started with the scheduler (``rq worker --with-scheduler``). Returns
    whether this call scheduled it.
    """
    ttl = int(in_seconds) + 300
    if not redis_connection().set(SWEEPER_LOCK, "1", nx=True, ex=ttl):
        return False
    get_queue().enqueue_in(timedelta(seconds=in_seconds), SWEEP, result_ttl=0)
    return True
