"""RQ jobs: thin wrappers that push an app context, load by id and call the domain.

Deliveries go through an **inbox**: ingest appends the delivery's id to a Redis list and
makes sure one ``process_inbox`` job is queued; that job processes the ids in batches, each
delivery in its own transaction (``processing.process_delivery``). One RQ job per delivery
would spend more on RQ's own bookkeeping (some 20 Redis round trips a job) than on the
delivery. A delivery whose processing raises is retried as its own job,
``process_delivery`` (job id ``delivery-<Delivery.id>``), on RQ's retry schedule.
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
PROCESS_INBOX = "app.webhooks.jobs.process_inbox"
#: Deliveries one ``process_inbox`` job takes from the list at a time, and before it hands
#: over to a fresh job (so that other jobs get their turn).
INBOX_BATCH = 100
INBOX_JOB_LIMIT = 2000
#: Seconds the "a process_inbox job is queued" flag lives without being refreshed: if that
#: job is lost, the next delivery (or the sweeper) starts another after this long.
INBOX_FLAG_TTL = 120
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


def inbox_key() -> str:
    """The Redis list of delivery ids waiting for processing, one per RQ queue."""
    return f"casehook:inbox:{current_app.config['RQ_QUEUE']}"


def inbox_flag_key() -> str:
    return f"{inbox_key()}:job"


def pending_deliveries() -> int:
    """How many deliveries wait in the inbox."""
    return redis_connection().llen(inbox_key())


def enqueue_processing(delivery_pk: str) -> bool:
    """Queue a committed delivery for processing; False when Redis is unreachable.

    The delivery is already stored, so a failure here loses nothing: the sweeper retries.
    One round trip: the id onto the inbox and the flag; a job only when none is queued.
    """
    try:
        with redis_connection().pipeline(transaction=False) as pipeline:
            pipeline.rpush(inbox_key(), delivery_pk)
            pipeline.set(inbox_flag_key(), "1", nx=True, ex=INBOX_FLAG_TTL)
            _, needs_job = pipeline.execute()
        if needs_job:
            get_queue().enqueue(PROCESS_INBOX, result_ttl=0, failure_ttl=7 * 86400)
        return True
    except RedisError as exc:
        log.warning("delivery.enqueue_failed", delivery_pk=delivery_pk, error=str(exc))
        return False


def process_inbox() -> int:
    """RQ job: process the deliveries waiting in the inbox; returns how many it processed.

    Takes ``INBOX_BATCH`` ids at a time; after ``INBOX_JOB_LIMIT`` hands over to a new job.
    When the inbox is empty it clears the flag, then looks once more, so an id pushed in
    between is never left without a job.
    """
    from app.webhooks import processing

    with job_context():
        connection, key, flag = redis_connection(), inbox_key(), inbox_flag_key()
        done = 0
        while done < INBOX_JOB_LIMIT:
            connection.expire(flag, INBOX_FLAG_TTL)
            delivery_pks = connection.lpop(key, INBOX_BATCH)
            if not delivery_pks:
                connection.delete(flag)
                if connection.llen(key) and connection.set(flag, "1", nx=True,
                                                           ex=INBOX_FLAG_TTL):  # fmt: skip
                    continue
                return done
            for raw in delivery_pks:
                delivery_pk = raw.decode() if isinstance(raw, bytes) else raw
                try:
                    processing.process_delivery(delivery_pk)
                except Exception as exc:  # one bad delivery must not hold up the rest
                    processing.mark_failed(delivery_pk, exc)
                    _retry_alone(delivery_pk)
                done += 1
        get_queue().enqueue(PROCESS_INBOX, result_ttl=0, failure_ttl=7 * 86400)
        return done


def _retry_alone(delivery_pk: str) -> None:
    # Its own job, on RQ's schedule: 10 s, then 60 s and 5 min (Retry), then failed.
    get_queue().enqueue_in(
        timedelta(seconds=10),
        PROCESS_DELIVERY,
        delivery_pk,
        job_id=delivery_job_id(delivery_pk),
        retry=Retry(max=2, interval=[60, 300]),
        result_ttl=300,
        failure_ttl=7 * 86400,
    )


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
    """Queue deliveries still ``received`` after ``older_than_seconds`` that are neither in
    the inbox nor waiting as a retry job.

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
    waiting = {raw.decode() for raw in connection.lrange(inbox_key(), 0, -1)}
    count = 0
    for delivery_pk in stranded:
        if delivery_pk in waiting or Job.exists(delivery_job_id(delivery_pk),
                                                connection=connection):  # fmt: skip
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
