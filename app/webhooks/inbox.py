"""The inbox: acknowledged deliveries waiting to be processed, in the database.

A delivery is in the inbox while its row says ``received`` (or ``failed`` with a retry
due): the row is the truth, Redis only carries wake-ups. Ingest gives each delivery a
**partition** (``INBOX_PARTITIONS`` of them) from the ordering key its provider derives
(the case's dedup key), so that deliveries for one case are processed one after another in
arrival order, while different partitions are drained by several workers at once.

A worker drains a partition under a lease (``inbox:<n>`` in ``app/tasks/leases.py``),
``INBOX_BATCH`` rows at a time, many deliveries per transaction (at most
``INBOX_TX_SECONDS`` of work) that both claims them and writes their effects
(``processing.process_batch``; a batch in which one delivery fails is redone one delivery
per transaction): ``kill -9`` at any instant leaves the deliveries of the open transaction
``received``, and its partition's lease runs out, so the supervisor wakes the partition
again. Nothing is lost; nothing runs twice.

Wake-ups are coalesced: one flag per partition in Redis (``SET NX EX``) lets one
``process_inbox`` job through per partition until a worker takes the partition's lease.
Ingest does not wait on Redis at all: it notes the partition (``wake_soon``) and a thread of
the web process sends the noted wake-ups together every ``INBOX_WAKE_DELAY_MS``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import zlib
from datetime import UTC, timedelta

from flask import Flask, current_app
from redis.exceptions import RedisError
from sqlalchemy import or_

from app import clock
from app.extensions import db
from app.logs import log
from app.tasks import leases
from app.tasks.queue import get_queue, redis_connection
from app.webhooks.models import Delivery

PROCESS_INBOX = "app.webhooks.jobs.process_inbox"
#: Deliveries read from a partition at a time.
INBOX_BATCH = 100
#: Seconds a worker keeps adding deliveries to one transaction (``processing.process_batch``):
#: long enough to pay the commit once for many, short enough that SQLite's other writers
#: (ingest) wait little for the write lock.
INBOX_TX_SECONDS = 0.2
#: Deliveries one job processes before it hands over to a fresh job (others get a turn).
INBOX_JOB_LIMIT = 2000
#: Seconds a partition's wake-up flag lives: at most one job per partition per this long
#: while a worker holds the partition.
WAKE_FLAG_TTL = 5
#: Failed deliveries are retried after these many seconds (then stay ``failed``; replay
#: them from the console or API).
RETRY_SCHEDULE = (10, 60, 300, 1800)


def partition_of(ordering_key: str) -> int:
    """The partition (0 … ``INBOX_PARTITIONS`` - 1) of an ordering key: a stable hash."""
    return (
        zlib.crc32(ordering_key.encode("utf-8", "replace")) % current_app.config["INBOX_PARTITIONS"]
    )


def _lease(partition: int) -> str:
    return f"inbox:{current_app.config['RQ_QUEUE']}:{partition}"


def _flag(partition: int) -> str:
    return f"casehook:inbox:{current_app.config['RQ_QUEUE']}:{partition}:woken"


def wake(partition: int, force: bool = False) -> bool:
    """Make sure a ``process_inbox(partition)`` job is coming; False when Redis is down.

    One round trip when a wake-up is already on its way (the flag is set), two otherwise.
    ``force`` ignores the flag (the supervisor, after a Redis restart or a lost job).
    """
    try:
        connection = redis_connection()
        if force or connection.set(_flag(partition), "1", nx=True, ex=WAKE_FLAG_TTL):
            get_queue().enqueue(PROCESS_INBOX, partition, result_ttl=0, failure_ttl=86400)
        return True
    except RedisError as exc:
        log.warning("inbox.wake_failed", partition=partition, error=str(exc))
        return False


class _Waker:
    """Ingest's wake-ups, sent to Redis by a thread of the web process, coalesced.

    A request only notes its partition (``wake_soon``); the thread wakes once per
    ``INBOX_WAKE_DELAY_MS`` every partition noted meanwhile, in one pipelined round trip
    for the flags. The delivery is committed before it is noted, so a wake-up lost with the
    process (or to a Redis outage) is a late delivery, not a lost one: the supervisor wakes
    partitions whose deliveries wait longer than ``SWEEP_AFTER_SECONDS``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due = threading.Event()
        self._pending: dict[tuple[Flask, str], set[int]] = {}
        self._pid: int | None = None

    def note(self, partition: int) -> None:
        app = current_app._get_current_object()
        key = (app, app.config["RQ_QUEUE"])
        with self._lock:
            self._pending.setdefault(key, set()).add(partition)
            if self._pid != os.getpid():  # first use in this (forked) process
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="inbox-waker", daemon=True).start()
        if not self._due.is_set():  # else the thread is already on its way
            self._due.set()

    def _run(self) -> None:
        while True:
            self._due.wait()
            time.sleep(self._delay())
            self._due.clear()
            with self._lock:
                pending, self._pending = self._pending, {}
            for (app, _queue), partitions in pending.items():
                with app.app_context():
                    _wake_many(sorted(partitions))

    def _delay(self) -> float:
        with self._lock:
            apps = [app for app, _ in self._pending]
        return max((app.config["INBOX_WAKE_DELAY_MS"] for app in apps), default=0) / 1000


_waker = _Waker()


def wake_soon(partition: int) -> None:
    """Ingest's wake-up: noted now, sent to Redis by a thread within ``INBOX_WAKE_DELAY_MS``
    together with the others noted meanwhile (at once, in this thread, when it is 0)."""
    if current_app.config["INBOX_WAKE_DELAY_MS"] <= 0:
        wake(partition)
    else:
        _waker.note(partition)


def _wake_many(partitions: list[int]) -> None:
    try:
        connection = redis_connection()
        with connection.pipeline(transaction=False) as pipe:
            for partition in partitions:
                pipe.set(_flag(partition), "1", nx=True, ex=WAKE_FLAG_TTL)
            fresh = [p for p, was_set in zip(partitions, pipe.execute(), strict=True) if was_set]
        queue = get_queue()
        for partition in fresh:
            queue.enqueue(PROCESS_INBOX, partition, result_ttl=0, failure_ttl=86400)
    except RedisError as exc:
        log.warning("inbox.wake_failed", partitions=partitions, error=str(exc))


def _waiting(partition: int | None = None):
    """The rows in the inbox: received, or failed with a retry due."""
    now = clock.now()
    condition = or_(
        Delivery.status == "received",
        (Delivery.status == "failed") & (Delivery.next_attempt_at <= now),
    )
    if partition is not None:
        condition = condition & (Delivery.partition == partition)
    return condition


def process_partition(partition: int) -> int:
    """Drain one partition under its lease; returns how many deliveries it processed.

    Returns 0 at once when another worker holds the partition: that worker looks again
    after it lets go, so a delivery committed meanwhile is not left behind.
    """
    from app.webhooks import processing

    name, ttl = _lease(partition), float(current_app.config["INBOX_LEASE_SECONDS"])
    done = 0
    while leases.acquire(name, ttl):
        renewed = time.monotonic()
        _clear_flag(partition)
        while done < INBOX_JOB_LIMIT:
            ids = db.session.scalars(
                db.select(Delivery.id)
                .where(_waiting(partition))
                .order_by(Delivery.received_at, Delivery.id)
                .limit(INBOX_BATCH)
            ).all()
            db.session.rollback()  # end the read before the writes
            if not ids:
                break
            while ids:
                # Renewed between transactions only: the lease is a row, and on SQLite
                # writing it inside our open transaction would wait on ourselves.
                if time.monotonic() - renewed > ttl / 3:
                    if not leases.acquire(name, ttl):
                        return done  # lost it (a long stall): the new holder goes on
                    renewed = time.monotonic()
                taken = processing.process_batch(ids, RETRY_SCHEDULE, INBOX_TX_SECONDS)
                ids = ids[taken:]
                done += taken
        leases.release(name)
        if done >= INBOX_JOB_LIMIT:
            wake(partition, force=True)  # hand over to a fresh job
            return done
        # A delivery committed while we held the lease woke a job that found the lease
        # taken and left: look once more now that it is free.
        if not db.session.scalar(db.select(Delivery.id).where(_waiting(partition)).limit(1)):
            db.session.rollback()
            return done
        db.session.rollback()
    return done


def _clear_flag(partition: int) -> None:
    # From here on a new delivery's wake-up may queue another job, which will find the
    # lease taken and leave: we see its delivery before we let go.
    with contextlib.suppress(RedisError):
        redis_connection().delete(_flag(partition))


def waiting_partitions(older_than: float) -> list[int]:
    """Partitions with deliveries waiting longer than ``older_than`` seconds and no worker
    holding them."""
    cutoff = clock.now() - timedelta(seconds=older_than)
    rows = db.session.scalars(
        db.select(Delivery.partition)
        .where(
            _waiting(),
            or_(Delivery.status == "failed", Delivery.received_at <= cutoff),
        )
        .distinct()
    ).all()
    db.session.rollback()
    held = leases.holders(f"inbox:{current_app.config['RQ_QUEUE']}:")
    return sorted(p for p in rows if _lease(p) not in held)


def wake_stranded(older_than: float, force: bool = False) -> int:
    """Wake every partition with deliveries waiting longer than ``older_than`` seconds
    and no worker on them; returns how many. A partition whose wake-up flag is still set
    (a job is on its way) is left alone unless ``force`` (Redis restarted: the job is
    gone). ``RedisError`` when Redis is down."""
    partitions = waiting_partitions(older_than)
    for partition in partitions:
        if not wake(partition, force=force):
            raise RedisError("Redis became unreachable while waking the inbox")
    return len(partitions)


def pending_deliveries() -> int:
    """How many deliveries wait in the inbox (received, or failed with a retry due)."""
    count = db.session.scalar(db.select(db.func.count(Delivery.id)).where(_waiting()))
    return int(count or 0)


def waiting_stats() -> tuple[int, float]:
    """``(deliveries waiting, seconds since the oldest of them arrived)`` for ``/metrics``;
    ``(0, 0.0)`` when the inbox is empty. Two index range scans (status, received_at)."""
    count, oldest = db.session.execute(
        db.select(db.func.count(Delivery.id), db.func.min(Delivery.received_at)).where(_waiting())
    ).one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:  # SQLite hands back naive UTC
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), max(0.0, (clock.now() - oldest).total_seconds())
