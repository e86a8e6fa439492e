"""The app context a background job runs in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, has_app_context

_worker_app: Flask | None = None


@contextmanager
def job_context() -> Iterator[None]:
    """Push an app context for one job (the caller's, when it already has one: tests).

    The worker's app is made once per process: its database pool and Redis connection
    serve every job.
    """
    if has_app_context():
        yield
        return
    global _worker_app
    if _worker_app is None:
        from app import create_app

        _worker_app = create_app()
    with _worker_app.app_context():
        yield
