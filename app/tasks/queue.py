"""Redis and RQ plumbing: one connection per process, jobs enqueued by import path and id."""

from __future__ import annotations

from flask import current_app
from redis import Redis
from rq import Queue

_connections: dict[str, Redis] = {}


def redis_connection(url: str | None = None) -> Redis:
    """The process-wide Redis client for ``url`` (default: ``REDIS_URL``).

    Short socket timeouts so that a Redis outage costs an ingest request about a second,
    not a hung worker: the delivery is already committed and the sweeper enqueues it later.
    """
    url = url or current_app.config["REDIS_URL"]
    if url not in _connections:
        _connections[url] = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    return _connections[url]


def get_queue(name: str | None = None) -> Queue:
    """The RQ queue named ``name`` (default: ``RQ_QUEUE``, "casehook")."""
    return Queue(name or current_app.config["RQ_QUEUE"], connection=redis_connection())
